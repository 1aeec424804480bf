"""Each statistic against a reference: scipy, brute force, or exact enumeration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from core.analysis.equivalence import Plan, agreement, mean_shift
from core.analysis.multiplicity import FAIL, INCONCLUSIVE, PASS, decide, holm
from core.analysis.operational import _tango, error_rate, latency_ratio
from core.analysis.shape import (
    classic_ks,
    psi_numbers,
    psi_threshold,
    quantile_shift,
    stuart_maxwell,
)
from core.analysis.simulate import exact_error_rate_size

ALPHA = 0.05
PLAN = Plan(ALPHA, ALPHA)  # sample-size planning at the same level


def test_holm_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = rng.random(6) ** 3
        m = len(p)
        order = np.argsort(p)
        expected = np.empty(m)
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p[i]))
            expected[i] = running
        np.testing.assert_allclose(holm(p[None])[0], expected)


def test_decide_needs_every_metric_to_pass_and_one_to_fail() -> None:
    p_pass = np.array([[0.01, 0.01], [0.01, 0.2], [0.5, 0.5], [0.01, 0.01]])
    p_fail = np.array([[0.9, 0.9], [0.9, 0.9], [0.9, 0.02], [0.9, 0.9]])
    may = np.array([[True, True], [True, True], [True, True], [True, False]])
    outcome, adjusted, verdict = decide(p_pass, p_fail, may, ALPHA)
    assert verdict.tolist() == [PASS, INCONCLUSIVE, FAIL, INCONCLUSIVE]
    assert outcome[3].tolist() == [PASS, INCONCLUSIVE]  # too few pairs to pass
    assert adjusted[2].tolist() == [0.9, 0.04]


def test_holm_controls_the_family_wise_error_under_dependence() -> None:
    rng = np.random.default_rng(1)
    runs, m = 20_000, 5
    shared = rng.standard_normal((runs, 1))
    z = 0.7 * shared + np.sqrt(1 - 0.49) * rng.standard_normal((runs, m))
    p = stats.norm.sf(z)  # every null true, positively dependent
    assert np.mean((holm(p) <= ALPHA).any(axis=1)) <= ALPHA


def test_mean_shift_tost_matches_two_one_sided_t_tests_when_nothing_is_skewed() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.3, size=200)
    d = np.concatenate([0.03 + x, 0.03 - x])  # symmetric: the skewness correction vanishes
    t = mean_shift(d[None], np.array([0.1]), ALPHA, PLAN)
    lower = stats.ttest_1samp(d, -0.1, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, 0.1, alternative="less").pvalue
    assert t.p_pass[0] == pytest.approx(max(lower, upper))
    ci = stats.t.interval(1 - 2 * ALPHA, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert (t.low[0], t.high[0]) == pytest.approx(ci)


def test_mean_shift_interval_bends_with_skewed_differences() -> None:
    rng = np.random.default_rng(3)
    d = rng.exponential(0.3, size=(1, 200)) - 0.3  # long right tail
    t = mean_shift(d, np.array([0.1]), ALPHA, PLAN)
    m = d.mean()
    assert t.low[0] < m < t.high[0]
    assert t.high[0] - m > m - t.low[0]  # the interval reaches further toward the long tail


def test_mean_shift_of_identical_outputs_passes_and_of_a_constant_offset_is_decided() -> None:
    zeros = np.zeros((1, 200))
    t = mean_shift(zeros, np.array([0.1]), ALPHA, PLAN)
    assert t.p_pass[0] == 0.0 and t.p_fail[0] == 1.0
    offset = np.full((1, 200), 0.3)
    t = mean_shift(offset, np.array([0.1]), ALPHA, PLAN)
    assert t.p_fail[0] == 0.0 and t.p_pass[0] == 1.0


def test_mean_shift_with_one_pair_decides_nothing() -> None:
    t = mean_shift(np.array([[0.5]]), np.array([0.1]), ALPHA, PLAN)
    assert t.p_pass[0] == 1.0 and t.p_fail[0] == 1.0


def test_agreement_is_the_exact_binomial_test() -> None:
    p = np.zeros(500, dtype=np.int64)
    s = p.copy()
    s[:4] = 1
    t = agreement(p[None], s[None], 0.98, ALPHA, PLAN)
    assert t.p_pass[0] == pytest.approx(stats.binomtest(4, 500, 0.02, "less").pvalue)
    assert t.p_fail[0] == pytest.approx(stats.binomtest(4, 500, 0.02, "greater").pvalue)
    assert t.estimate[0] == pytest.approx(0.992)


def test_classic_ks_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    for a, b in [
        (rng.normal(size=700), rng.normal(0.1, size=500)),
        (rng.integers(0, 5, 300).astype(float), rng.integers(0, 6, 400).astype(float)),  # ties
    ]:
        d, p = classic_ks(np.sort(a), np.sort(b))
        ref = stats.ks_2samp(a, b, method="asymp")
        assert d == pytest.approx(ref.statistic)
        assert p == pytest.approx(ref.pvalue)


def test_psi_threshold_reproduces_the_false_alarm_rate_of_the_plain_rule() -> None:
    # two independent samples of one distribution, n = 100 each, 10 bins
    assert stats.chi2.sf(0.1 / (2 / 100), 9) == pytest.approx(0.834, abs=0.001)
    assert psi_threshold(100, 100, 10, ALPHA) == pytest.approx(0.02 * stats.chi2.ppf(0.95, 9))
    rng = np.random.default_rng(5)
    alarms = [
        psi_numbers(np.sort(rng.normal(size=100)), np.sort(rng.normal(size=100)))[0] > 0.1
        for _ in range(2000)
    ]
    assert 0.80 <= np.mean(alarms) <= 0.87


def test_psi_of_identical_samples_is_zero() -> None:
    x = np.sort(np.random.default_rng(6).normal(size=1000))
    assert psi_numbers(x, x.copy()) == (0.0, 10)


def test_stuart_maxwell_with_two_classes_is_mcnemar() -> None:
    p = np.array([0] * 50 + [0] * 10 + [1] * 3 + [1] * 37)
    s = np.array([0] * 50 + [1] * 10 + [0] * 3 + [1] * 37)
    stat, df, pv = stuart_maxwell(p, s, 2)
    assert df == 1
    assert stat == pytest.approx((10 - 3) ** 2 / (10 + 3))
    assert pv == pytest.approx(stats.chi2.sf(stat, 1))
    assert stuart_maxwell(p, p.copy(), 2) == (0.0, 0, 1.0)


def test_tango_with_no_margin_is_mcnemar() -> None:
    b, c, n = np.array([12.0]), np.array([5.0]), np.array([400.0])
    assert _tango(b, c, n, np.array([0.0]))[0] == pytest.approx((12 - 5) / np.sqrt(17))
    # mirror symmetry for negative margins
    assert _tango(b, c, n, np.array([-0.01]))[0] == pytest.approx(
        -_tango(c, b, n, np.array([0.01]))[0]
    )


@pytest.mark.parametrize(
    ("n", "base", "margin"),
    [
        (300, 0.001, 0.01),
        (341, 0.002, 0.01),
        (500, 0.0, 0.01),
        (889, 0.001, 0.005),
        (200, 0.02, 0.02),
    ],
)
def test_error_rate_test_keeps_its_exact_size_at_the_boundary(
    n: int, base: float, margin: float
) -> None:
    # these are the worst cases of the uncorrected score test (its size reached 0.088)
    for alpha in (0.05, 0.0125):
        assert exact_error_rate_size(n, base, margin, "fail", alpha) <= alpha
        assert exact_error_rate_size(n, base, margin, "pass", alpha) <= alpha


def test_error_rate_passes_with_no_errors_once_enough_pairs() -> None:
    few = np.zeros((1, 100), dtype=bool)
    t = error_rate(few, few, 0.01, ALPHA, PLAN)
    assert t.p_pass[0] > ALPHA  # 0 errors in 100 calls does not show a rate below 1 %
    need = int(t.needed[0])
    assert 300 < need < 500
    enough = np.zeros((1, need), dtype=bool)
    assert error_rate(enough, enough, 0.01, ALPHA, PLAN).p_pass[0] <= ALPHA
    short = np.zeros((1, need - 1), dtype=bool)
    assert error_rate(short, short, 0.01, ALPHA, PLAN).p_pass[0] > ALPHA


def test_latency_ratio_bounds_are_order_statistics() -> None:
    rng = np.random.default_rng(7)
    p = 20 * np.exp(0.3 * rng.standard_normal(3000))
    t = latency_ratio(p[None], 1.2 * p[None], 1.5, ALPHA, PLAN)
    assert t.estimate[0] == pytest.approx(1.2)
    assert t.low[0] < 1.2 < t.high[0]
    assert t.p_pass[0] <= ALPHA
    t = latency_ratio(p[None], 2.0 * p[None], 1.5, ALPHA, PLAN)
    assert t.p_fail[0] <= ALPHA


def test_latency_slack_keeps_sub_millisecond_jitter_from_deciding() -> None:
    rng = np.random.default_rng(12)
    production = 0.2 * np.exp(0.3 * rng.standard_normal(600))
    shadow = 0.2 * np.exp(0.3 * rng.standard_normal(600))
    shadow[:6] = 3.0  # a handful of 3 ms stalls: 15 times production's p99, yet only 3 ms
    strict = latency_ratio(production[None], shadow[None], 1.5, ALPHA, PLAN)
    assert strict.p_pass[0] > ALPHA
    lenient = latency_ratio(production[None], shadow[None], 1.5, ALPHA, PLAN, slack_ms=5.0)
    assert lenient.p_pass[0] <= ALPHA
    assert lenient.quantiles["allowed_p99"][0] == pytest.approx(
        lenient.quantiles["production_p99"][0] + 5.0
    )


def test_latency_with_too_few_calls_is_undecided() -> None:
    p = np.linspace(10, 20, 50)[None]
    t = latency_ratio(p, p, 1.5, ALPHA, PLAN)
    assert t.p_pass[0] > ALPHA and t.p_fail[0] > ALPHA
    assert t.high[0] == np.inf  # a p99 has no upper bound from 50 calls


def test_quantile_shift_of_identical_and_of_discrete_outputs() -> None:
    rng = np.random.default_rng(8)
    for p in (rng.normal(size=(1, 800)), rng.integers(0, 4, size=(1, 800)).astype(float)):
        t = quantile_shift(p, p.copy(), 0.05, ALPHA, PLAN)
        assert t.estimate[0] == 0.0
        assert t.p_pass[0] <= ALPHA and t.p_fail[0] > ALPHA


def test_quantile_shift_finds_a_spread_change_the_mean_does_not_see() -> None:
    rng = np.random.default_rng(9)
    p = rng.normal(size=(1, 5000))
    s = 1.6 * p  # same mean, 60 % wider
    t = quantile_shift(p, s, 0.05, ALPHA, PLAN)
    assert t.p_fail[0] <= ALPHA
    assert abs(t.estimate[0]) > 0.05
    m = mean_shift((s - p) / p.std(), np.array([0.1]), ALPHA, PLAN)
    assert m.p_pass[0] <= ALPHA  # the mean did not move


def test_quantile_shift_gap_is_the_cdf_gap_at_production_quantiles() -> None:
    rng = np.random.default_rng(10)
    p = rng.normal(size=(1, 2000))
    s = p + 0.3
    t = quantile_shift(p, s, 0.05, ALPHA, PLAN)
    x = np.sort(p[0])[np.ceil(np.arange(1, 20) / 20 * 2000).astype(int) - 1]
    gaps = [(np.mean(s[0] <= xi) - np.mean(p[0] <= xi)) for xi in x]
    assert t.estimate[0] == pytest.approx(max(gaps, key=abs))
    assert t.estimate[0] < 0  # shadow higher: less of it below production's quantiles


@pytest.mark.parametrize("runs", [1, 7])
def test_tests_broadcast_over_runs(runs: int) -> None:
    rng = np.random.default_rng(11)
    d = rng.normal(size=(runs, 300))
    batch = mean_shift(d, np.full(runs, 0.1), ALPHA, PLAN)
    for r in range(runs):
        one = mean_shift(d[r : r + 1], np.array([0.1]), ALPHA, PLAN)
        assert batch.p_pass[r] == pytest.approx(one.p_pass[0])
        assert batch.p_fail[r] == pytest.approx(one.p_fail[0])
