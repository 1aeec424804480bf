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
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from core.analysis.model import BoolArray, FloatArray

INCONCLUSIVE, PASS, FAIL = 0, 1, 2
OUTCOMES = ("inconclusive", "pass", "fail")


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
