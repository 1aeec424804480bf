"""The benchmark table's paired ratios: rounds cancel the machine's drift."""

from __future__ import annotations

import statistics
from itertools import chain

from bench.bench_gateway import interval, per_round
from bench.table import Ratio, render, under


def test_a_drift_between_rounds_cancels_in_per_round_ratios_not_in_pooled_ones() -> None:
    # Two identical paths; the machine runs twice as slow in the second round, and the
    # second path happened to get more of its samples from that round.
    blocks = {
        "a": [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]],
        "b": [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]],
        "c": [[1.03, 1.03, 1.03], [2.06, 2.06, 2.06]],
    }
    assert per_round(blocks, "b", "a") == [1.0, 1.0]
    assert [round(r, 6) for r in per_round(blocks, "c", "a")] == [1.03, 1.03]
    skewed = {"a": [[1.0] * 4, [2.0] * 2], "b": [[1.0] * 2, [2.0] * 4]}
    pooled = statistics.median(chain(*skewed["b"])) / statistics.median(chain(*skewed["a"]))
    assert pooled == 2.0
    assert per_round(skewed, "b", "a") == [1.0, 1.0]


def test_the_interval_brackets_the_median_and_narrows_with_agreeing_rounds() -> None:
    spread = [1.00, 1.02, 1.04, 1.06, 1.08] * 6
    low, high = interval(spread)
    assert low <= statistics.median(spread) <= high
    assert low < high
    assert interval([1.03] * 30) == (1.03, 1.03)


def test_a_paired_ratio_is_what_the_table_shows_and_the_goal_judges() -> None:
    pooled_over = Ratio("mirror", 1.07, 1.0, "ms", under(1.05), paired=1.03)
    assert pooled_over.ratio == 1.03
    assert pooled_over.met is True
    assert "1.03x" in render([pooled_over])
    unpaired = Ratio("mirror", 1.07, 1.0, "ms", under(1.05))
    assert unpaired.ratio == 1.07
    assert unpaired.met is False
