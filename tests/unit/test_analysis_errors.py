"""Error rates, measured by simulation with fixed seeds (the definitions: core/analysis/simulate.py).

- identical models (exactly equal, and equal up to noise): over 1,000 runs
  the false-alarm (fail) rate stays at or below alpha;
- at the tolerance boundary, the worst case for both errors, each test
  fails and passes wrongly no more often than alpha, within Monte Carlo
  error (three standard errors of a rate of alpha), and so does the whole
  analysis when it looks again as pairs accumulate;
- the plain PSI > 0.1 rule, scored on the same runs, misses what mmm finds.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from core.analysis import simulate
from core.analysis.equivalence import Plan, mean_shift
from core.analysis.multiplicity import look_alpha
from core.analysis.operational import latency_ratio
from core.analysis.shape import quantile_shift
from core.spec import AnalysisSpec

ALPHA = 0.05
PLAN = Plan(ALPHA, ALPHA)  # sample-size planning at the same level
RUNS = 1000


def slack(runs: int, alpha: float = ALPHA) -> float:
    return 3 * math.sqrt(alpha * (1 - alpha) / runs)


@pytest.mark.parametrize("scenario", simulate.IDENTICAL, ids=lambda s: s.name)
@pytest.mark.parametrize("n", [500, 2000])
def test_identical_models_fail_at_most_alpha_of_the_time(
    scenario: simulate.Scenario, n: int
) -> None:
    rates = simulate.run(scenario, n, runs=RUNS, seed=n)
    assert rates.failed <= ALPHA
    if n == 2000:
        assert rates.passed >= 0.95  # and the right answer comes once the sample is large enough


def test_a_stricter_alpha_is_honoured() -> None:
    spec = AnalysisSpec(alpha=0.01)
    rates = simulate.run(simulate.IDENTICAL[1], 500, runs=RUNS, seed=7, spec=spec)
    assert rates.failed <= 0.01


@pytest.mark.parametrize("skewed", [False, True], ids=["normal", "exponential"])
@pytest.mark.parametrize("n", [100, 500])
def test_mean_shift_at_its_tolerance(n: int, skewed: bool) -> None:
    runs = 4000
    rng = np.random.default_rng(11)
    for sign in (1, -1):
        noise = (
            rng.exponential(0.28, size=(runs, n)) - 0.28
            if skewed
            else rng.normal(0, 0.28, size=(runs, n))
        )
        t = mean_shift(sign * 0.1 + noise, np.full(runs, 0.1), ALPHA, PLAN)
        assert np.mean(t.p_fail <= ALPHA) <= ALPHA + slack(runs)
        assert np.mean(t.p_pass <= ALPHA) <= ALPHA + slack(runs)


def test_whole_analysis_at_the_mean_shift_tolerance() -> None:
    # shadow moved by exactly the tolerance (0.1 production SD): neither verdict is warranted
    rates = simulate.run(simulate.SHIFTS[1], 500, runs=RUNS, seed=12)
    assert rates.failed <= ALPHA + slack(RUNS)
    assert rates.passed <= ALPHA + slack(RUNS)


def test_quantile_shift_at_its_tolerance() -> None:
    runs, n, eps = 2000, 500, 0.05
    rng = np.random.default_rng(13)
    sd = math.sqrt(1 + simulate.NOISE_SD**2)
    shift = sd * stats.norm.ppf(0.5 + eps)  # the CDF gap at production's median is exactly eps
    for sign in (1, -1):
        p, s = simulate.numbers(rng, runs, n)
        t = quantile_shift(p, s + sign * shift, eps, ALPHA, PLAN)
        assert np.mean(t.p_fail <= ALPHA) <= ALPHA + slack(runs)
        assert np.mean(t.p_pass <= ALPHA) <= ALPHA + slack(runs)


def test_whole_analysis_at_the_agreement_tolerance() -> None:
    rates = simulate.run(simulate.FLIPS[1], 500, runs=RUNS, seed=14)  # 2 % flips, 98 % allowed
    assert rates.failed <= ALPHA + slack(RUNS)
    assert rates.passed <= ALPHA + slack(RUNS)


def test_latency_at_its_tolerance() -> None:
    runs, n = 1000, 2000
    rng = np.random.default_rng(15)
    production = simulate.latencies(rng, runs, n)
    shadow = simulate.latencies(rng, runs, n, ratio=1.5)  # p99 exactly 1.5 times production's
    t = latency_ratio(production, shadow, 1.5, ALPHA, PLAN)
    assert np.mean(t.p_fail <= ALPHA) <= ALPHA + slack(runs)
    assert np.mean(t.p_pass <= ALPHA) <= ALPHA + slack(runs)


@pytest.mark.parametrize("scenario", [simulate.SHIFTS[1], simulate.FLIPS[1]], ids=lambda s: s.name)
def test_looking_again_as_pairs_accumulate_keeps_both_errors_within_alpha(
    scenario: simulate.Scenario,
) -> None:
    # at the tolerance boundary, looks at 500, 2,000 and 8,000 pairs (alpha spent per look)
    rates = simulate.sequential(scenario, runs=RUNS, seed=20)
    assert rates.failed <= ALPHA + slack(RUNS)
    assert rates.passed <= ALPHA + slack(RUNS)


def test_looks_spend_no_more_than_alpha_in_all() -> None:
    spent = [look_alpha(ALPHA, k) for k in range(1, 60)]
    assert spent[0] == pytest.approx(0.75 * ALPHA)
    assert all(b < a for a, b in itertools.pairwise(spent))
    assert sum(spent) <= ALPHA
    with pytest.raises(ValueError):
        look_alpha(ALPHA, 0)


def test_clear_differences_fail_where_the_plain_psi_rule_sees_nothing() -> None:
    shift = simulate.run(simulate.SHIFTS[2], 10_000, runs=200, seed=16)  # 0.2 SD
    assert shift.failed >= 0.95
    assert shift.psi_plain <= 0.05
    flips = simulate.run(simulate.FLIPS[2], 2000, runs=RUNS, seed=17)  # 5 % of labels flipped
    assert flips.failed >= 0.95
    assert flips.psi_plain <= 0.05


def test_small_differences_inside_the_tolerance_pass_with_enough_pairs() -> None:
    shift = simulate.run(simulate.SHIFTS[0], 10_000, runs=200, seed=18)  # 0.05 SD
    assert shift.passed >= 0.95
    flips = simulate.run(simulate.FLIPS[0], 2000, runs=RUNS, seed=19)  # 1 % flips
    assert flips.passed >= 0.95
