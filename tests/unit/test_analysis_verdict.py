"""`analyze` end to end: verdicts, their explanation, and the public record."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from core.analysis import PairedSample, Verdict, analyze, simulate
from core.analysis.engine import GROWTH, evaluate
from core.analysis.multiplicity import OUTCOMES
from core.spec import AnalysisSpec


def noisy(n: int, seed: int, shift_sd: float = 0.0) -> PairedSample:
    rng = np.random.default_rng(seed)
    p, s = simulate.numbers(rng, 1, n, shift_sd)
    ms = simulate.latencies(rng, 2, n)
    return PairedSample.from_arrays(p[0], s[0], ms[0], ms[1])


def test_exactly_equal_outputs_pass_without_tripping_on_zero_variance() -> None:
    rng = np.random.default_rng(1)
    p = rng.normal(size=500)
    v = analyze(PairedSample.from_arrays(p, p.copy()))
    assert v.verdict == "pass"
    assert "identical on every pair" in v.summary
    assert v.metric("mean_shift").statistic == 0.0
    assert v.needed_samples is None


def test_constant_outputs_on_both_sides_are_compared_on_a_relative_scale() -> None:
    same = analyze(PairedSample.from_arrays(np.full(500, 2.0), np.full(500, 2.0)))
    assert same.verdict == "pass"
    moved = analyze(PairedSample.from_arrays(np.full(500, 2.0), np.full(500, 2.5)))
    assert moved.verdict == "fail"  # 0.5 is 25 % of the value 2: beyond 0.1
    assert moved.metric("mean_shift").statistic == pytest.approx(0.25)


@pytest.mark.parametrize("n", [20, 60])
def test_too_few_pairs_is_inconclusive_with_the_number_needed(n: int) -> None:
    rng = np.random.default_rng(2)
    p = rng.normal(size=n)
    v = analyze(PairedSample.from_arrays(p, p.copy()))  # identical, yet not enough to show it
    assert v.verdict == "inconclusive"
    assert v.needed_samples is not None and v.needed_samples >= 100
    assert f"collect about {v.needed_samples - n:,} more pairs" in v.summary


def test_a_noisy_small_sample_is_inconclusive_and_its_estimate_is_enough() -> None:
    v = analyze(noisy(150, seed=3))
    assert v.verdict == "inconclusive"
    assert v.needed_samples is not None and v.needed_samples > 150
    undecided = [m for m in v.metrics if m.gating and m.outcome == "inconclusive"]
    assert undecided and all(m.needed_samples for m in undecided)
    assert v.needed_samples <= GROWTH * 150  # one step grows the sample at most this much
    # the second look, at that size and with its smaller share of alpha, settles it mostly
    later = simulate.run(simulate.IDENTICAL[1], v.needed_samples, runs=200, seed=4, look=2)
    assert later.passed >= 0.7


def test_min_pairs_holds_back_a_pass() -> None:
    rng = np.random.default_rng(5)
    p = rng.normal(size=400)
    v = analyze(PairedSample.from_arrays(p, p.copy()), AnalysisSpec(min_pairs=1000))
    assert v.verdict == "inconclusive"
    assert v.needed_samples == 1000


def test_a_clear_shift_fails_and_says_which_metric_and_by_how_much() -> None:
    v = analyze(noisy(2000, seed=6, shift_sd=0.3))
    assert v.verdict == "fail"
    m = v.metric("mean_shift")
    assert m.outcome == "fail"
    assert m.statistic is not None and m.statistic == pytest.approx(0.3, abs=0.05)
    assert m.p_fail_adjusted is not None and m.p_fail_adjusted <= 0.05
    assert m.interval is not None and m.interval[0] is not None and m.interval[0] > 0.1
    assert v.summary.startswith("fail after 2,000 pairs: mean shift +0.29")


def test_a_slower_shadow_fails_on_latency() -> None:
    rng = np.random.default_rng(7)
    p = rng.normal(size=3000)
    ms = simulate.latencies(rng, 1, 3000)[0]
    v = analyze(PairedSample.from_arrays(p, p.copy(), ms, 2.5 * ms))
    assert v.verdict == "fail"
    assert v.metric("latency_p99").outcome == "fail"
    assert v.metric("latency_p99").statistic == pytest.approx(2.5)


def test_the_latency_line_says_how_many_calls_were_timed() -> None:
    # the mirror times one shadow call a batch: 1 in 20 here, and the test is that size
    rng = np.random.default_rng(8)
    p = rng.normal(size=4000)
    ms = simulate.latencies(rng, 2, 4000)
    shadow_ms = ms[1].copy()
    shadow_ms[np.arange(4000) % 20 != 0] = np.nan
    latency = analyze(PairedSample.from_arrays(p, p.copy(), ms[0], shadow_ms)).metric("latency_p99")
    assert latency.values["timed"] == 200
    assert "59.78 ms allowed, over 200 timed calls; too few values" in latency.detail


def test_labels_pass_or_fail_on_agreement() -> None:
    rng = np.random.default_rng(8)
    names = np.array(["cat", "dog", "bird"])
    p = names[rng.choice(3, size=3000, p=simulate.CLASS_SHARES)]
    s = p.copy()
    s[:15] = "dog"  # 0.5 % changed
    assert analyze(PairedSample.from_arrays(p.tolist(), s.tolist())).verdict == "pass"
    s[:300] = "bird"  # up to 10 % changed
    v = analyze(PairedSample.from_arrays(p.tolist(), s.tolist()))
    assert v.verdict == "fail"
    assert v.metric("agreement").outcome == "fail"
    shares = v.metric("label_shift").p_value
    assert shares is not None and shares < 0.001  # the changes all go one way


def test_probabilities_get_top_class_agreement_and_per_class_shifts() -> None:
    rng = np.random.default_rng(9)
    p, s = simulate.probabilities(rng, 1, 3000, classes=2)
    v = analyze(PairedSample.from_arrays(p[0].tolist(), s[0].tolist()))
    assert v.kind == "probabilities"
    gating = {(m.name, m.output) for m in v.metrics if m.gating}
    assert gating == {
        ("agreement", "top class"),
        ("mean_shift", "class 1"),  # with two classes one column says it all
        ("quantile_shift", "class 1"),
        ("error_rate", None),
    }
    assert v.verdict == "pass"
    p3, s3 = simulate.probabilities(rng, 1, 3000, classes=3)
    shifted = np.roll(s3[0], 1, axis=1)  # the shadow ranks the classes differently
    v = analyze(PairedSample.from_arrays(p3[0], shifted))
    assert v.verdict == "fail"
    assert {m.output for m in v.metrics if m.name == "mean_shift"} == {
        "class 0",
        "class 1",
        "class 2",
    }


def test_vectors_are_compared_output_by_output() -> None:
    rng = np.random.default_rng(10)
    p = rng.normal(size=(2000, 2)) * [1.0, 10.0]
    s = p + np.array([0.0, 5.0])  # the second output moved by half its SD
    v = analyze(PairedSample.from_arrays(p, s))
    assert v.kind == "vectors"
    assert v.metric("mean_shift", "output 0").outcome == "pass"
    assert v.metric("mean_shift", "output 1").outcome == "fail"
    assert v.verdict == "fail"


def test_public_form_is_plain_json_with_the_contract_keys() -> None:
    sample = noisy(800, seed=11)
    v = analyze(sample)
    public = v.to_public()
    text = json.dumps(public, allow_nan=False)
    back = json.loads(text)
    assert back["verdict"] in ("pass", "fail", "inconclusive")
    assert back["samples"] == 800
    assert {"summary", "needed_samples", "metrics", "alpha", "correction"} <= set(back)
    for m in back["metrics"]:
        assert {"name", "statistic", "threshold", "outcome", "detail"} <= set(m)
        if m["gating"]:
            assert m["p_pass"] is not None and m["p_fail"] is not None
            assert m["threshold"] is not None and m["interval"] is not None
    assert Verdict.model_validate(back) == v


def test_one_evaluation_for_many_runs_matches_analyze_run_by_run() -> None:
    spec = AnalysisSpec()
    rng = np.random.default_rng(12)
    scenario = simulate.Scenario("check", "numbers", shift_sd=0.08)
    batch = simulate.batch(scenario, rng, 12, 400)
    ev = evaluate(batch, spec)
    assert batch.production_ms is not None and batch.shadow_ms is not None
    for r in range(12):
        one = analyze(
            PairedSample.from_arrays(
                batch.production[r], batch.shadow[r], batch.production_ms[r], batch.shadow_ms[r]
            ),
            spec,
        )
        assert one.verdict == OUTCOMES[int(ev.verdict[r])]
        for m in ev.gating:
            single = one.metric(m.name)
            assert m.p_pass is not None
            assert single.p_pass == pytest.approx(float(m.p_pass[r]), rel=1e-4, abs=1e-12)


@pytest.mark.parametrize(
    "bad",
    [{"min_agreement": 1.0}, {"max_error_rate_increase": 0.0}, {"max_quantile_shift": 0.0},
     {"min_pairs": 1}, {"alpha": 0.5}, {"quantile_shift_sd": 0.25}],
)  # fmt: skip
def test_tolerances_that_cannot_be_shown_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        AnalysisSpec.model_validate(bad)


def test_a_later_look_spends_a_smaller_share_of_alpha() -> None:
    sample = noisy(1000, seed=13)
    first, second = analyze(sample), analyze(sample, look=2)
    assert first.look == 1 and first.alpha_look == pytest.approx(0.0375)
    assert second.look == 2 and second.alpha_look == pytest.approx(0.05 * 3 / 16)
    for a, b in zip(first.metrics, second.metrics, strict=True):
        if a.gating and a.interval and b.interval and a.interval[0] is not None:
            assert b.interval[0] is not None and b.interval[0] <= a.interval[0]  # wider
    assert second.to_public()["look"] == 2
