"""Power and false-alarm tables of the shadow analysis, as Markdown (for docs/analysis.md).

`python -m bench power_tables [--runs N]`. Every row simulates N captures
(default 1,000, fixed seeds) with the default tolerances and scores them
twice: with mmm's analysis (share of runs that pass / stay inconclusive /
fail) and with PSI over the same outputs, by the plain PSI > 0.1 rule and by
PSI above its sample-size threshold. Scenario definitions:
core/analysis/simulate.py.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats

from core.analysis import simulate
from core.analysis.equivalence import mean_shift
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
    """Each test alone with the truth exactly at its tolerance, n = 500 (latency: 2,000)."""
    alpha = AnalysisSpec().alpha
    rng = np.random.default_rng(99)
    rows: list[tuple[str, float, float]] = []
    n = 500
    d = rng.normal(0.1, 0.28, size=(runs, n))
    t = mean_shift(d, np.full(runs, 0.1), alpha, alpha)
    rows.append(("mean shift = 0.1 SD (normal differences)", *_rates(t.p_pass, t.p_fail, alpha)))
    skewed = 0.1 + rng.exponential(0.28, size=(runs, n)) - 0.28
    t = mean_shift(skewed, np.full(runs, 0.1), alpha, alpha)
    rows.append(
        ("mean shift = 0.1 SD (exponential differences)", *_rates(t.p_pass, t.p_fail, alpha))
    )
    sd = math.sqrt(1 + simulate.NOISE_SD**2)
    p, s = simulate.numbers(rng, runs, n)
    t = quantile_shift(p, s + sd * stats.norm.ppf(0.55), 0.05, alpha, alpha)
    rows.append(("quantile shift = 5 points", *_rates(t.p_pass, t.p_fail, alpha)))
    ms_p = simulate.latencies(rng, runs, 2000)
    ms_s = simulate.latencies(rng, runs, 2000, ratio=1.5)
    t = latency_ratio(ms_p, ms_s, 1.5, alpha, alpha)
    rows.append(("p99 latency ratio = 1.5 (n = 2,000)", *_rates(t.p_pass, t.p_fail, alpha)))
    print(
        f"\n#### Each test alone, truth exactly at its tolerance (n = 500, {runs:,} runs, alpha {alpha})\n"
    )
    print("| truth | wrong pass | wrong fail |")
    print("|---|---:|---:|")
    for name, wrong_pass, wrong_fail in rows:
        print(f"| {name} | {pct(wrong_pass)} | {pct(wrong_fail)} |")


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
    unpaired_table(runs)
    boundary_table(max(runs, 1000))
    print(f"\n<!-- {time.perf_counter() - started:.0f} s -->")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
