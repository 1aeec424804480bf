"""Shadow analysis of 1,000,000 pairs against a bare `scipy.stats.ks_2samp` on the same data.

Both run in the same process on the same arrays, in alternating rounds, so
drift of the machine hits both alike. Reported: the median of each, and
their ratio (goal: the whole analysis at most 1x the one KS test: every metric of the
verdict in no more time than the one test a drift tool runs). For
context, also the cost of parsing 1,000,000 captured records, and of
analysing labels and class probabilities of the same size.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

from bench.table import Ratio, at_most
from core.analysis import PairedSample, analyze, simulate

PAIRS = 1_000_000
ROUNDS = 7
GOAL = 1.0


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def time_from_records(production: Any, shadow: Any, ms: Any) -> float:
    records = [
        {"production": a, "shadow": b, "production_ms": c, "shadow_ms": d,
         "production_error": None, "shadow_error": None}
        for a, b, c, d in zip(production.tolist(), shadow.tolist(), ms[0].tolist(), ms[1].tolist(),
                              strict=True)
    ]  # fmt: skip
    return timed(lambda: PairedSample.from_records(records))


def main() -> list[Ratio]:
    rng = np.random.default_rng(0)
    p, s = simulate.numbers(rng, 1, PAIRS)
    ms = simulate.latencies(rng, 2, PAIRS)
    production, shadow = p[0], s[0]

    def analysis() -> None:
        analyze(PairedSample.from_arrays(production, shadow, ms[0], ms[1]))

    def ks() -> None:
        stats.ks_2samp(production, shadow)

    analysis()  # warm up: first calls import and allocate
    ks()
    ks_times, analysis_times = [], []
    for _ in range(ROUNDS):
        ks_times.append(timed(ks))
        analysis_times.append(timed(analysis))
    t_ks, t_an = statistics.median(ks_times), statistics.median(analysis_times)
    ratio = t_an / t_ks
    verdict = analyze(PairedSample.from_arrays(production, shadow, ms[0], ms[1]))
    print(
        f"analysis benchmark: {PAIRS:,} pairs (numbers with latencies), {ROUNDS} alternating rounds"
    )
    print(f"  scipy.stats.ks_2samp       median {t_ks * 1000:8.1f} ms")
    print(f"  analyze (every metric)     median {t_an * 1000:8.1f} ms   ({verdict.verdict})")
    status = "met" if ratio <= GOAL else "NOT met"
    print(f"  ratio analyze / ks_2samp   x{ratio:.2f}  (goal <= x{GOAL:g}: {status})")

    t_records = time_from_records(production, shadow, ms)
    print(
        f"  from_records of {PAIRS:,} captured dicts      {t_records * 1000:8.1f} ms "
        f"(x{t_records / t_ks:.1f} of ks_2samp; parsing, not part of the ratio)"
    )

    labels = simulate.labels(rng, 1, PAIRS)
    t_labels = timed(lambda: analyze(PairedSample.from_arrays(labels[0][0], labels[1][0])))
    print(f"  analyze {PAIRS:,} labels                     {t_labels * 1000:8.1f} ms")
    probs = simulate.probabilities(rng, 1, PAIRS)
    t_probs = timed(lambda: analyze(PairedSample.from_arrays(probs[0][0], probs[1][0])))
    print(f"  analyze {PAIRS:,} 3-class probabilities      {t_probs * 1000:8.1f} ms")
    return [Ratio(f"analysis of {PAIRS:,} pairs / one ks_2samp", t_an, t_ks, "s", at_most(GOAL))]


if __name__ == "__main__":
    main()
