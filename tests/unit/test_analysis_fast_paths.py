"""The fast paths of the analysis give what the direct computations give.

Large captures are analysed without the costly steps of the textbook
computations: the KS statistic is bounded stretch by stretch and evaluated point by
point only where the bound leaves it open, latency order statistics are found
without sorting every latency, and each side is sorted once. Each fast path is
checked here against the direct computation (scipy, or a full sort).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from core.analysis import PairedSample, analyze
from core.analysis.equivalence import Plan
from core.analysis.operational import _order_statistics, _Ranked, _window, latency_ratio
from core.analysis.shape import classic_ks, ks_statistic, quantile_shift

ALPHA = 0.05
PLAN = Plan(ALPHA, ALPHA)


def _ks_reference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    with np.errstate(divide="ignore"):  # one value each: scipy's p divides by 0 pairs
        ref = stats.ks_2samp(a, b, method="asymp")
    return float(ref.statistic), float(ref.pvalue)


def _samples(rng: np.random.Generator, n: int, m: int, kind: str) -> tuple[np.ndarray, ...]:
    if kind == "continuous":
        return rng.normal(size=n), rng.normal(0.05, size=m)
    if kind == "few values":  # ties within and across the samples
        return rng.integers(0, 5, n).astype(float), rng.integers(0, 6, m).astype(float)
    if kind == "rounded":  # many ties, many distinct values
        return np.round(rng.normal(size=n), 2), np.round(rng.normal(size=m), 2)
    if kind == "resampled":  # b repeats values of a
        a = rng.normal(size=n)
        return a, a[rng.integers(0, n, m)]
    if kind == "nearly equal":  # one sample a copy of the other but for a few values
        a = rng.normal(size=n)
        b = a[:m].copy() if m <= n else np.concatenate([a, rng.normal(size=m - n)])
        b[: max(1, m // 1000)] += 0.5
        return a, b
    if kind == "apart":  # every value of b above every value of a
        return rng.normal(size=n), 100 + rng.normal(size=m)
    if kind == "constant":  # one value, and a few others in b
        return np.ones(n), np.where(rng.random(m) < 0.05, 2.0, 1.0)
    raise AssertionError(kind)


KINDS = ["continuous", "few values", "rounded", "resampled", "nearly equal", "apart", "constant"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n", "m"), [(1, 1), (1, 7), (2, 2), (5, 3), (64, 64), (65, 200)])
def test_ks_matches_scipy_on_small_samples(kind: str, n: int, m: int) -> None:
    rng = np.random.default_rng(n * 1000 + m)
    for _ in range(20):
        a, b = _samples(rng, n, m, kind)
        d, p = classic_ks(np.sort(a), np.sort(b))
        ref_d, ref_p = _ks_reference(a, b)
        assert d == pytest.approx(ref_d, rel=1e-12, abs=1e-15)
        if n + m > 2:  # scipy's asymptotic p is undefined below one effective pair
            assert p == pytest.approx(ref_p, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n", "m"), [(20_000, 20_000), (30_000, 17_000)])
def test_ks_matches_scipy_on_large_samples(kind: str, n: int, m: int) -> None:
    # above 10,000 values ks_2samp's default ("auto") is the asymptotic p-value, as here
    a, b = _samples(np.random.default_rng(n + m), n, m, kind)
    d, p = classic_ks(np.sort(a), np.sort(b))
    ref = stats.ks_2samp(a, b)
    assert d == pytest.approx(ref.statistic, rel=1e-12, abs=1e-15)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_ks_of_identical_samples_is_zero() -> None:
    a = np.sort(np.random.default_rng(1).normal(size=5000))
    assert classic_ks(a, a.copy()) == (0.0, 1.0)
    assert ks_statistic(a, a.copy()) == stats.ks_2samp(a, a).statistic


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-4, 4), min_size=1, max_size=150),
    st.lists(st.integers(-4, 4), min_size=1, max_size=150),
    st.floats(0.1, 10),
)
def test_ks_statistic_matches_scipy_with_ties(a: list[int], b: list[int], scale: float) -> None:
    x, y = np.array(a) * scale, np.array(b) * scale
    d = ks_statistic(np.sort(x), np.sort(y))
    assert d == pytest.approx(_ks_reference(x, y)[0], rel=1e-12, abs=1e-15)


def _ordered(rng: np.random.Generator, n: int, layout: str) -> np.ndarray:
    x = 20 * np.exp(0.3 * rng.standard_normal(n))
    if layout == "sorted":
        return np.sort(x)
    if layout == "reversed":
        return np.sort(x)[::-1].copy()
    if layout == "rounded":  # whole milliseconds: many ties
        return np.round(x)
    if layout == "against the sample":  # every value a regular sample reads is the largest
        x[:: max(n // 16_384, 1)] = 1e6
        return x
    return x


@pytest.mark.parametrize(
    "layout", ["random", "sorted", "reversed", "rounded", "against the sample"]
)
@pytest.mark.parametrize("n", [1, 2, 7, 100, 5_000, 200_000])
def test_order_statistics_are_those_of_a_full_sort(layout: str, n: int) -> None:
    rng = np.random.default_rng(n)
    x = _ordered(rng, n, layout)
    before = x.copy()
    full = np.sort(x)
    sample = np.sort(x[:: max(n // 16_384, 1)])
    ranks = _window(n, 0.99)
    for first, last in [(int(ranks[0]), int(ranks[-1])), (1, 1), (n, n), ((n + 1) // 2,) * 2]:
        got = _order_statistics(x, sample, first, last)
        np.testing.assert_array_equal(got, full[first - 1 : last])
    ranked = _Ranked.of(x, 0.99)
    np.testing.assert_array_equal(x, before)  # read, never reordered
    assert ranked.median == full[int(np.ceil(n / 2)) - 1]
    assert ranked.tail == full[int(np.ceil(0.99 * n)) - 1]
    np.testing.assert_array_equal(ranked.window, full[ranks - 1])
    points = np.sort(rng.choice(full, size=min(n, 50)))
    np.testing.assert_array_equal(
        ranked.at_or_below(points), np.searchsorted(full, points, side="right")
    )


def test_latency_ratio_is_that_of_sorted_latencies() -> None:
    rng = np.random.default_rng(3)
    p = 20 * np.exp(0.3 * rng.standard_normal((2, 50_000)))
    s = 1.3 * 20 * np.exp(0.3 * rng.standard_normal((2, 50_000)))
    s[0, ::7] = np.nan  # not measured
    t = latency_ratio(p, s, 1.5, ALPHA, PLAN, 5.0)
    for r in range(2):
        xs = np.sort(s[r][~np.isnan(s[r])])
        xp = np.sort(p[r])
        assert t.quantiles["shadow_p50"][r] == xs[int(np.ceil(len(xs) / 2)) - 1]
        assert t.quantiles["production_p99"][r] == xp[int(np.ceil(0.99 * len(xp))) - 1]
        p99 = xs[int(np.ceil(0.99 * len(xs))) - 1] / xp[int(np.ceil(0.99 * len(xp))) - 1]
        assert t.estimate[r] == p99


def test_latency_with_a_single_call_or_zero_milliseconds_at_a_later_look() -> None:
    # a bound of 0 ms (one call at a later look, or calls measured as 0 ms) is a bound
    # too small to divide by: the interval is open, the analysis goes on
    one = PairedSample.from_arrays([1.0], [1.0], [5.0], [6.0])
    assert analyze(one, look=2).metric("latency_p99").interval == (0.0, None)
    zeros = PairedSample.from_arrays(np.zeros(50), np.zeros(50), np.zeros(50), np.ones(50))
    assert analyze(zeros, look=2).metric("latency_p99").outcome == "inconclusive"


@pytest.mark.parametrize("runs", [1, 5])
def test_quantile_shift_with_sorted_rows_given_or_not(runs: int) -> None:
    rng = np.random.default_rng(4)
    p = np.round(rng.normal(size=(runs, 3000)), 1)  # ties at the grid points
    s = p + np.round(rng.normal(0.02, 0.3, size=(runs, 3000)), 1)
    given_ = quantile_shift(p, s, 0.05, ALPHA, PLAN, np.sort(p), np.sort(s))
    alone = quantile_shift(p, s, 0.05, ALPHA, PLAN)
    for field in ("estimate", "low", "high", "p_pass", "p_fail", "needed", "level"):
        np.testing.assert_array_equal(getattr(given_, field), getattr(alone, field))
    for r in range(runs):
        one = quantile_shift(p[r : r + 1], s[r : r + 1], 0.05, ALPHA, PLAN)
        assert one.p_pass[0] == given_.p_pass[r] and one.p_fail[0] == given_.p_fail[r]


def test_the_analysis_of_a_large_capture_reports_scipy_ks() -> None:
    rng = np.random.default_rng(5)
    production = rng.normal(size=200_000)
    shadow = production + rng.normal(0, 0.2, size=200_000)
    verdict = analyze(PairedSample.from_arrays(production, shadow))
    ks = verdict.metric("ks")
    ref = stats.ks_2samp(production, shadow)  # "auto": asymptotic at this size
    assert ks.statistic == pytest.approx(float(ref.statistic), rel=1e-5)
    assert ks.p_value == pytest.approx(float(ref.pvalue), rel=1e-5, abs=1e-12)


def _capture(shift: float, shadow_ms: float) -> PairedSample:
    """30,000 pairs with ties (outputs to 0.01, latencies to 0.1 ms), errors on both sides and
    shadow latencies not measured."""
    rng = np.random.default_rng(2024)
    n = 30_000
    truth = rng.normal(size=n)
    production = np.round(truth + rng.normal(0, 0.2, n), 2)
    shadow = np.round(truth + rng.normal(shift, 0.25, n), 2)
    production_ms = np.round(20 * np.exp(0.3 * rng.normal(size=n)), 1)
    shadow_ms_ = np.round(shadow_ms * np.exp(0.3 * rng.normal(size=n)), 1)
    shadow_ms_[::9] = np.nan
    return PairedSample.from_arrays(
        production, shadow, production_ms, shadow_ms_,
        production_error=rng.random(n) < 0.02, shadow_error=rng.random(n) < 0.025,
    )  # fmt: skip


# The report of the analysis that sorted every output and latency and searched every point
# for KS: the fast paths must reproduce it.
CLOSE = {
    "mean_shift": {"statistic": 0.0316954, "interval": [0.028256, 0.0351353], "p_pass": 0.0,
                   "p_fail": 1.0, "values": {"scale": 1.00792}, "outcome": "pass"},
    "quantile_shift": {"statistic": -0.0143943, "interval": [0.011045, 0.0177436],
                       "p_pass": 3.36906e-80, "p_fail": 1.0, "values": {"level": 0.5},
                       "outcome": "pass"},
    "mean_abs_change": {"statistic": 0.255552, "values": {"identical": 0.0126865}},
    "ks": {"statistic": 0.0149171, "p_value": 0.00334091},
    "psi": {"statistic": 0.00154686, "p_value": 0.00829241,
            "values": {"threshold": 0.00117935, "bins": 10.0, "plain_rule": 0.1}},
    "error_rate": {"statistic": 0.0025, "interval": [0.000371316, 0.00463404],
                   "p_pass": 3.8875e-10, "p_fail": 1.0,
                   "values": {"production": 0.0209, "shadow": 0.0234}, "outcome": "pass"},
    "latency_p99": {"statistic": 1.08889, "interval": [1.05353, 1.12312], "p_pass": 1.80602e-14,
                    "p_fail": 1.0, "values": {"production_ms": 40.5, "shadow_ms": 44.1,
                                              "allowed_ms": 60.75, "slack_ms": 5.0,
                                              "timed": 26_041},
                    "outcome": "pass"},
    "latency_p50": {"statistic": 1.1, "values": {"production_ms": 20.0, "shadow_ms": 22.0}},
}  # fmt: skip
SHIFTED_LOOK_2 = {
    "mean_shift": {"statistic": 0.150752, "interval": [0.146211, 0.155293], "p_pass": 1.0,
                   "p_fail": 5.92218e-151, "values": {"scale": 1.00792}, "outcome": "fail"},
    "quantile_shift": {"statistic": -0.0602258, "interval": [0.05565, 0.0648017], "p_pass": 1.0,
                       "p_fail": 1.42414e-06, "values": {"level": 0.55}, "outcome": "fail"},
    "mean_abs_change": {"statistic": 0.282337, "values": {"identical": 0.00982852}},
    "ks": {"statistic": 0.0608183, "p_value": 1.43003e-46},
    "psi": {"statistic": 0.0214151, "p_value": 7.66815e-61,
            "values": {"threshold": 0.00117935, "bins": 10.0, "plain_rule": 0.1}},
    "error_rate": {"statistic": 0.0025, "interval": [-0.000311383, 0.00532069],
                   "p_pass": 3.8875e-10, "p_fail": 1.0,
                   "values": {"production": 0.0209, "shadow": 0.0234}, "outcome": "pass"},
    "latency_p99": {"statistic": 1.63457, "interval": [1.57282, 1.69773], "p_pass": 1.0,
                    "p_fail": 2.57872e-09, "values": {"production_ms": 40.5, "shadow_ms": 66.2,
                                                      "allowed_ms": 60.75, "slack_ms": 5.0,
                                                      "timed": 26_041},
                    "outcome": "fail"},
    "latency_p50": {"statistic": 1.645, "values": {"production_ms": 20.0, "shadow_ms": 32.9}},
}  # fmt: skip


@pytest.mark.parametrize(
    ("shift", "shadow_ms", "look", "verdict", "expected"),
    [(0.03, 22.0, 1, "pass", CLOSE), (0.15, 33.0, 2, "fail", SHIFTED_LOOK_2)],
)
def test_the_report_is_that_of_the_direct_computations(
    shift: float, shadow_ms: float, look: int, verdict: str, expected: dict[str, dict[str, object]]
) -> None:
    report = analyze(_capture(shift, shadow_ms), look=look).to_public()
    assert report["verdict"] == verdict
    metrics = {m["name"]: m for m in report["metrics"]}
    assert set(metrics) == set(expected)
    for name, figures in expected.items():
        for key, value in figures.items():
            assert metrics[name][key] == pytest.approx(value, rel=1e-5), (name, key)
