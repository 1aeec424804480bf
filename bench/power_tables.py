"""Power and false-alarm tables of the shadow analysis, as Markdown (for docs/analysis.md).

`python -m bench power_tables [--runs N]`. Every row simulates N captures
(default 1,000, fixed seeds) with the default tolerances and scores them
twice: with mmm's analysis (share of runs that pass / stay inconclusive /
fail) and with PSI over the same outputs, by the plain PSI > 0.1 rule and by
PSI above its sample-size threshold. Every single-capture row is a first
look (alpha 0.0375 of 0.05); the sequential table follows a shadow that is
analysed again as pairs accumulate. Scenario definitions:
core/analysis/simulate.py.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats

from core.analysis import simulate
from core.analysis.engine import evaluate
from core.analysis.equivalence import Plan, mean_shift
from core.analysis.multiplicity import FAIL, INCONCLUSIVE, PASS, look_alpha
from core.analysis.operational import latency_ratio
from core.analysis.shape import quantile_shift
from core.spec import AnalysisSpec

SIZES = (500, 2000, 10_000)


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def scenario_table(title: str, scenarios: tuple[simulate.Scenario, ...], runs: int) -> None:
    print(f"\n#### {title}\n")
    print("| scenario | n | pass | inconclusive | fail | PSI > 0.1 | PSI > its threshold |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for i, scenario in enumerate(scenarios):
        for n in SIZES:
            r = simulate.run(scenario, n, runs=runs, seed=1000 * i + n)
            print(
                f"| {scenario.name} | {n:,} | {pct(r.passed)} | {pct(r.inconclusive)} "
                f"| {pct(r.failed)} | {pct(r.psi_plain)} | {pct(r.psi_calibrated)} |"
            )


def unpaired_table(runs: int) -> None:
    print(
        "\n#### The drift-tool setting: PSI > 0.1 on two independent samples of one distribution\n"
    )
    print("| n per sample | PSI > 0.1 (false alarms) |")
    print("|---:|---:|")
    for n in (100, 500, *SIZES[1:]):
        print(f"| {n:,} | {pct(simulate.unpaired_psi_alarms(n, runs=runs, seed=n))} |")


def boundary_table(runs: int) -> None:
    """Each test alone with the truth exactly at its tolerance, at the full alpha."""
    alpha = AnalysisSpec().alpha
    rng = np.random.default_rng(99)
    rows: list[tuple[str, float, float]] = []
    n = 500
    for size in (100, 500):
        for name, noise in (("normal", _normal), ("exponential", _exponential)):
            worst = (0.0, 0.0)
            for sign in (1, -1):  # at +0.1 and at -0.1: report the worse of the two
                d = sign * 0.1 + noise(rng, (runs, size))
                t = mean_shift(d, np.full(runs, 0.1), alpha, Plan(alpha, alpha))
                wrong = _rates(t.p_pass, t.p_fail, alpha)
                worst = (max(worst[0], wrong[0]), max(worst[1], wrong[1]))
            rows.append((f"mean shift = 0.1 SD ({name} differences, n = {size})", *worst))
    sd = math.sqrt(1 + simulate.NOISE_SD**2)
    p, s = simulate.numbers(rng, runs, n)
    t = quantile_shift(p, s + sd * stats.norm.ppf(0.55), 0.05, alpha, Plan(alpha, alpha))
    rows.append(("quantile shift = 5 points (n = 500)", *_rates(t.p_pass, t.p_fail, alpha)))
    ms_p = simulate.latencies(rng, runs, 2000)
    ms_s = simulate.latencies(rng, runs, 2000, ratio=1.5)
    t = latency_ratio(ms_p, ms_s, 1.5, alpha, Plan(alpha, alpha))
    rows.append(("p99 latency ratio = 1.5 (n = 2,000)", *_rates(t.p_pass, t.p_fail, alpha)))
    print(
        f"\n#### Each test alone, truth exactly at its tolerance ({runs:,} runs, alpha {alpha}; "
        "mean shift: the worse of +0.1 and -0.1)\n"
    )
    print("| truth | wrong pass | wrong fail |")
    print("|---|---:|---:|")
    for name, wrong_pass, wrong_fail in rows:
        print(f"| {name} | {pct(wrong_pass)} | {pct(wrong_fail)} |")


def sequential_table(runs: int) -> None:
    spec = AnalysisSpec()
    unspent = AnalysisSpec(alpha=spec.alpha / look_alpha(1.0, 1))  # every look at the full alpha
    looks = (500, 2000, 8000)
    print(
        f"\n#### Looking again as pairs accumulate ({runs:,} runs; looks at "
        f"{', '.join(f'{n:,}' for n in looks)} pairs; the first verdict that is not "
        "inconclusive counts)\n"
    )
    print("| scenario | pass | inconclusive | fail | without spending: pass | fail |")
    print("|---|---:|---:|---:|---:|---:|")
    scenarios = (simulate.IDENTICAL[1], simulate.IDENTICAL[3], *simulate.SHIFTS, *simulate.FLIPS)
    for i, scenario in enumerate(scenarios):
        r = simulate.sequential(scenario, looks, runs=runs, seed=500 + i, spec=spec)
        u = simulate.sequential(scenario, looks, runs=runs, seed=500 + i, spec=unspent, spend=False)
        print(
            f"| {scenario.name} | {pct(r.passed)} | {pct(r.inconclusive)} | {pct(r.failed)} "
            f"| {pct(u.passed)} | {pct(u.failed)} |"
        )


def metric_table(runs: int) -> None:
    """Which metric holds a verdict back: each gating metric's outcomes, identical models."""
    spec = AnalysisSpec()
    print(f"\n#### Per metric, identical models up to noise ({runs:,} runs): pass / inconclusive\n")
    print("| scenario | n | metric | pass | inconclusive | fail |")
    print("|---|---:|---|---:|---:|---:|")
    for scenario in simulate.IDENTICAL[1::2]:
        for n in SIZES[:2]:
            ev = evaluate(simulate.batch(scenario, np.random.default_rng(n), runs, n), spec)
            for m in ev.gating:
                assert m.outcome is not None
                name = m.name + (f" [{m.output}]" if m.output else "")
                rates = [np.mean(m.outcome == code) for code in (PASS, INCONCLUSIVE, FAIL)]
                print(
                    f"| {scenario.name} | {n:,} | {name} | "
                    + " | ".join(pct(r) for r in rates)
                    + " |"
                )


def error_rate_sizes() -> None:
    """Exact size of the error-rate test at its boundary, by enumerating every table."""
    print("\n#### Error-rate test: exact chance of a wrong verdict at the boundary\n")
    print("| n | production error rate | margin | alpha | wrong pass | wrong fail |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, base, margin in ((300, 0.001, 0.01), (500, 0.0, 0.01), (889, 0.001, 0.005),
                            (2000, 0.01, 0.01), (5000, 0.1, 0.05)):  # fmt: skip
        for alpha in (0.05, 0.0125):
            wrong_pass = simulate.exact_error_rate_size(n, base, margin, "pass", alpha)
            wrong_fail = simulate.exact_error_rate_size(n, base, margin, "fail", alpha)
            print(f"| {n:,} | {pct(base)} | {pct(margin)} | {alpha} | {100 * wrong_pass:.2f} % "
                  f"| {100 * wrong_fail:.2f} % |")  # fmt: skip


def _normal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.normal(0.0, 0.28, size=shape)


def _exponential(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.exponential(0.28, size=shape) - 0.28  # skewed, mean 0, SD 0.28


def _rates(p_pass: np.ndarray, p_fail: np.ndarray, alpha: float) -> tuple[float, float]:
    return float(np.mean(p_pass <= alpha)), float(np.mean(p_fail <= alpha))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench power_tables")
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args([] if argv is None else argv)
    started = time.perf_counter()
    runs = args.runs
    spec = AnalysisSpec()
    print(f"<!-- python -m bench power_tables: {runs:,} runs per row, default tolerances: "
          f"{spec.model_dump()} -->")  # fmt: skip
    scenario_table("Identical models (a fail is a false alarm)", simulate.IDENTICAL, runs)
    scenario_table(
        f"Mean shifts (tolerance {spec.mean_shift_sd} SD: 0.05 should pass, 0.1 is the "
        "boundary, 0.2 should fail)",
        simulate.SHIFTS,
        runs,
    )
    scenario_table(
        f"Label flips (tolerance {1 - spec.min_agreement:.0%} disagreement: 1 % should pass, "
        "2 % is the boundary, 5 % should fail)",
        simulate.FLIPS,
        runs,
    )
    sequential_table(runs)
    metric_table(runs)
    unpaired_table(runs)
    boundary_table(max(4 * runs, 1000))
    error_rate_sizes()
    print(f"\n<!-- {time.perf_counter() - started:.0f} s -->")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
