"""Combining the metrics into one verdict, with false alarms controlled for the family.

- fail: a metric fails when its Holm-adjusted fail p-value is at most alpha.
  Holm (step-down Bonferroni) bounds the chance that *any* metric fails
  wrongly (family-wise error rate) at alpha under any dependence between the
  metrics. That is the error a gate needs: one false fail rolls a good
  version back. Benjamini-Hochberg bounds the expected share of false fails
  among fails instead, which says nothing about a single decision, and
  needs positive dependence between tests that mean, shape and error-rate
  tests of the same outputs do not guarantee. For the verdict itself ("does
  any metric fail") Holm equals Bonferroni; its step-down only makes the
  attribution to further metrics sharper.
- pass: every metric must pass on its own at level alpha. Requiring all of
  them is an intersection-union test (Berger 1982): the chance of a wrong
  pass is at most alpha with no correction, because a wrong overall pass
  needs the one metric that is really out of tolerance to pass wrongly.
- otherwise inconclusive.

Repeated looks: an inconclusive shadow collects more pairs and is analysed
again. Testing each look at the full alpha would let a wrong verdict slip
through at any of them (at the tolerance boundary, three looks at 500,
2,000 and 8,000 pairs passed wrongly 9.6 % of the time at alpha 0.05). So
alpha is the allowance for every look at one shadow together: look k
spends alpha * 3 / 4^k (3/4 of it at the first look, 3/16 at the second,
...), which sums to alpha over any number of looks (Bonferroni over looks,
valid however the looks depend on each other).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from core.analysis.model import BoolArray, FloatArray

INCONCLUSIVE, PASS, FAIL = 0, 1, 2
OUTCOMES = ("inconclusive", "pass", "fail")


def look_alpha(alpha: float, look: int) -> float:
    """The part of `alpha` that look number `look` (1, 2, ...) at one shadow may spend."""
    if look < 1:
        raise ValueError(f"look must be 1 or more, got {look}")
    return float(alpha * 3 / 4.0**look)


def holm(p: FloatArray) -> FloatArray:
    """Holm-adjusted p-values along the last axis."""
    m = p.shape[-1]
    if m == 0:
        return p.copy()
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    scaled = np.minimum(1.0, ranked * (m - np.arange(m)))
    stepped = np.maximum.accumulate(scaled, axis=-1)
    out = np.empty_like(stepped)
    np.put_along_axis(out, order, stepped, axis=-1)
    return out


def decide(
    p_pass: FloatArray, p_fail: FloatArray, may_pass: BoolArray, alpha: float
) -> tuple[npt.NDArray[np.int64], FloatArray, npt.NDArray[np.int64]]:
    """Per-metric outcomes, Holm-adjusted fail p-values and the verdict, for arrays (R, M).

    `may_pass` is False where a metric has too few pairs to pass yet."""
    adjusted = holm(np.nan_to_num(p_fail, nan=1.0))
    fails = adjusted <= alpha
    passes = (np.nan_to_num(p_pass, nan=1.0) <= alpha) & may_pass & ~fails
    outcome = np.where(fails, FAIL, np.where(passes, PASS, INCONCLUSIVE)).astype(np.int64)
    verdict = np.where(
        fails.any(axis=-1), FAIL, np.where(passes.all(axis=-1), PASS, INCONCLUSIVE)
    ).astype(np.int64)
    return outcome, adjusted, verdict
