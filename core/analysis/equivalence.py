"""Three-way tests on paired differences: inside the tolerance, outside it, or not yet known.

Every test here works on the last axis and broadcasts over leading axes, so
the same code scores one capture (`analyze`) and a thousand simulated ones
(the error-rate suite) alike. Each returns a `Tested` with two p-values:

- `p_pass`: the null is "the difference is at or beyond the tolerance";
  small means evidence that it is inside (equivalence, e.g. TOST).
- `p_fail`: the null is "the difference is within the tolerance"; small
  means evidence that it is outside.

Both are level-alpha tests at the boundary, the worst case for either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from core.analysis.model import BoolArray, FloatArray, IntArray

# Sample-size estimates aim at this chance of settling the question at the observed effect.
PLANNING_POWER = 0.8
# An estimate above this many pairs is no estimate: collecting cannot settle it in practice.
MAX_NEEDED = 10_000_000


@dataclass(frozen=True)
class Tested:
    """One gating test over R runs; every array has shape (R,)."""

    estimate: FloatArray  # observed value, in the metric's unit
    low: FloatArray  # confidence interval of the estimate (level given by the metric)
    high: FloatArray
    p_pass: FloatArray
    p_fail: FloatArray
    needed: FloatArray  # pairs (of this test's kind) that should settle it; NaN: no estimate
    count: IntArray  # pairs the test used


def full(shape: tuple[int, ...], value: float) -> FloatArray:
    return np.full(shape, value, dtype=np.float64)


def needed(
    n: npt.ArrayLike, unit_sd: npt.ArrayLike, gap: npt.ArrayLike, z: npt.ArrayLike
) -> FloatArray:
    """Pairs at which an effect `gap` from the boundary, with per-pair SD `unit_sd`, is shown
    with PLANNING_POWER by a one-sided test whose critical value is `z`; NaN when gap <= 0."""
    n_ = np.asarray(n, dtype=np.float64)
    sd, g = np.asarray(unit_sd, dtype=np.float64), np.asarray(gap, dtype=np.float64)
    zb = float(stats.norm.ppf(PLANNING_POWER))
    with np.errstate(divide="ignore", invalid="ignore"):
        est = ((np.asarray(z) + zb) * sd / g) ** 2
    est = np.where(g > 0, np.maximum(est, np.ceil(1.2 * n_) + 1), np.nan)
    return np.where(est <= MAX_NEEDED, np.ceil(est), np.nan)


# ---------------------------------------------------------------- mean shift (TOST)


def mean_shift(
    d: FloatArray,
    margin: FloatArray,
    alpha: float,
    alpha_fail: float,
    margin_var: FloatArray | None = None,
) -> Tested:
    """Paired mean difference against +-`margin` (same unit as `d`).

    Pass: TOST (two one-sided t-tests); its (1 - 2 alpha) interval lies inside
    the margin. Fail: the folded t-test of |mean| > margin, exact in size at
    |mean| = margin (both tails counted). `margin_var` is the per-pair variance
    the margin itself carries when it is estimated from the same sample (a
    multiple of production's SD); it widens the standard error. Differences
    that are all equal, with an exact margin, have no spread: the decision is
    then the comparison itself.
    """
    n = d.shape[-1]
    shape = d.shape[:-1]
    margin = np.broadcast_to(margin, shape)
    count = np.full(shape, n, dtype=np.int64)
    if n == 0:
        nan = full(shape, np.nan)
        return Tested(nan, nan, nan, full(shape, 1.0), full(shape, 1.0), nan, count)
    m = d.mean(axis=-1)
    sd = d.std(axis=-1, ddof=1) if n > 1 else full(shape, np.nan)
    if margin_var is not None:
        sd = np.sqrt(sd**2 + margin_var)
    se = sd / np.sqrt(n)
    df = max(n - 1, 1)
    a = np.abs(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_pass = np.maximum(stats.t.sf((m + margin) / se, df), stats.t.cdf((m - margin) / se, df))
        p_fail = stats.t.sf((a - margin) / se, df) + stats.t.sf((a + margin) / se, df)
    flat = se == 0  # every difference equal: no sampling spread within the sample
    p_pass = np.where(flat, np.where(a < margin, 0.0, 1.0), p_pass)
    p_fail = np.where(flat, np.where(a > margin, 0.0, 1.0), p_fail)
    unknown = ~np.isfinite(se)  # one pair: no spread to judge by
    p_pass = np.where(unknown, 1.0, p_pass)
    p_fail = np.minimum(np.where(unknown, 1.0, p_fail), 1.0)
    half = float(stats.t.ppf(1 - alpha, df)) * np.where(np.isfinite(se), se, np.inf)
    z_pass, z_fail = stats.norm.ppf(1 - alpha), stats.norm.ppf(1 - alpha_fail)
    need = np.where(
        a < margin, needed(n, sd, margin - a, z_pass), needed(n, sd, a - margin, z_fail)
    )
    return Tested(m, m - half, m + half, p_pass, p_fail, need, count)


# ---------------------------------------------------------------- agreement (exact binomial)


def agreement(
    production: IntArray, shadow: IntArray, min_agreement: float, alpha: float, alpha_fail: float
) -> Tested:
    """Share of pairs with the same label against `min_agreement`, by exact binomial tests
    on the number of disagreements; the interval is Clopper-Pearson, one-sided alpha each."""
    differ: BoolArray = production != shadow
    n = differ.shape[-1]
    k = differ.sum(axis=-1)
    r0 = 1.0 - min_agreement
    p_pass = np.asarray(stats.binom.cdf(k, n, r0), dtype=np.float64)
    p_fail = np.asarray(stats.binom.sf(k - 1, n, r0), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(k > 0, stats.beta.ppf(alpha, k, n - k + 1), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1 - alpha, k + 1, n - k), 1.0)
        rate = k / n if n else full(k.shape, np.nan)
    z_pass, z_fail = stats.norm.ppf(1 - alpha), stats.norm.ppf(1 - alpha_fail)
    zb = stats.norm.ppf(PLANNING_POWER)
    # one-sample binomial sample size: null spread at the boundary, alternative at the estimate
    spread_null, spread_alt = np.sqrt(r0 * (1 - r0)), np.sqrt(rate * (1 - rate))
    with np.errstate(divide="ignore", invalid="ignore"):
        need_pass = ((z_pass * spread_null + zb * spread_alt) / (r0 - rate)) ** 2
        need_fail = ((z_fail * spread_null + zb * spread_alt) / (rate - r0)) ** 2
    # with no disagreement at all, the exact test passes once (1 - r0)^n <= alpha
    zero = np.log(alpha) / np.log1p(-r0) if r0 > 0 else np.inf
    need = np.where(rate < r0, np.maximum(need_pass, zero), need_fail)
    need = np.where(np.isfinite(need) & (rate != r0), np.maximum(need, 1.2 * n + 1), np.nan)
    need = np.where(need <= MAX_NEEDED, np.ceil(need), np.nan)
    count = np.broadcast_to(np.int64(n), k.shape).astype(np.int64)
    return Tested(1 - rate, 1 - hi, 1 - lo, p_pass, p_fail, need, count)
