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


@dataclass(frozen=True)
class Plan:
    """The levels the next look will test at: sample-size estimates plan for them."""

    alpha_pass: float  # each metric's pass test
    alpha_fail: float  # a metric's fail test, after Holm's first step

    def z_pass(self) -> float:
        return float(stats.norm.ppf(1 - self.alpha_pass))

    def z_fail(self, tests: int = 1) -> float:
        """Critical value of a fail test that is itself a Bonferroni over `tests` parts."""
        return float(stats.norm.ppf(1 - self.alpha_fail / tests))


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
    plan: Plan,
    margin_var: FloatArray | None = None,
) -> Tested:
    """Paired mean difference against +-`margin` (same unit as `d`).

    One-sided t-tests at mu = -margin and mu = +margin, each with Hall's
    (1992) cubic transformation, which removes the first-order effect of
    skewed differences on one-sided t-tests. Pass: TOST (both tests show the
    mean inside). Fail: the folded test of |mean| > margin, whose size at
    |mean| = margin is alpha with both tails counted. `margin_var` is the
    per-pair variance the margin carries when it is estimated from the same
    sample (a multiple of production's SD); it widens the standard error.
    Differences that are all equal, with an exact margin, have no spread:
    the decision is then the comparison itself.
    """
    n = d.shape[-1]
    shape = d.shape[:-1]
    margin = np.broadcast_to(margin, shape)
    count = np.full(shape, n, dtype=np.int64)
    if n < 2:  # one pair has no spread to judge by
        nan, one = full(shape, np.nan), full(shape, 1.0)
        m = d.mean(axis=-1) if n else nan
        return Tested(m, nan, nan, one, one, nan, count)
    m = d.mean(axis=-1)
    centred = d - m[..., None]
    squares = centred * centred
    sd = np.sqrt(squares.sum(axis=-1) / (n - 1))
    third = np.einsum("...i,...i->...", squares, centred) / n  # one pass, no cube array
    if margin_var is not None:
        sd = np.sqrt(sd**2 + margin_var)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(sd > 0, third / sd**3, 0.0)
    df = n - 1
    t_up = _hall(m, sd, skew, n, margin)  # large: mean above +margin
    t_down = _hall(m, sd, skew, n, -margin)  # small: mean below -margin
    above = stats.t.sf(t_up, df)  # p of "mean > +margin"
    below = stats.t.cdf(t_down, df)  # p of "mean < -margin"
    p_pass = np.maximum(1 - above, 1 - below)
    # folded: each side's p plus the other tail at that boundary; exact size alpha at |mean| = margin
    p_fail = np.minimum(np.minimum(above + (1 - below), below + (1 - above)), 1.0)
    a = np.abs(m)
    flat = ~(sd > 0)  # every difference equal
    p_pass = np.where(flat, np.where(a < margin, 0.0, 1.0), p_pass)
    p_fail = np.where(flat, np.where(a > margin, 0.0, 1.0), p_fail)
    crit = float(stats.t.ppf(1 - alpha, df))
    low = np.where(flat, m, _hall_inverse(m, sd, skew, n, crit))
    high = np.where(flat, m, _hall_inverse(m, sd, skew, n, -crit))
    need = np.where(
        a < margin,
        needed(n, sd, margin - a, plan.z_pass()),
        needed(n, sd, a - margin, plan.z_fail()),
    )
    return Tested(m, low, high, p_pass, p_fail, need, count)


def _hall(m: FloatArray, sd: FloatArray, skew: FloatArray, n: int, mu0: FloatArray) -> FloatArray:
    """Hall's skewness-corrected t statistic for H0: mean = mu0 (monotone in the mean)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (m - mu0) / sd
        out: FloatArray = np.sqrt(n) * (u + skew * u**2 / 3 + skew**2 * u**3 / 27 + skew / (6 * n))
    return out


def _hall_inverse(m: FloatArray, sd: FloatArray, skew: FloatArray, n: int, z: float) -> FloatArray:
    """The mu0 at which `_hall` equals z: the transform is ((1 + g u / 3)^3 - 1) / g."""
    target = z / np.sqrt(n) - skew / (6 * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        curved = (3 / skew) * (np.cbrt(1 + skew * target) - 1)
    u = np.where(np.abs(skew) > 1e-12, curved, target)
    out: FloatArray = m - u * sd
    return out


# ---------------------------------------------------------------- agreement (exact binomial)


def agreement(
    production: IntArray, shadow: IntArray, min_agreement: float, alpha: float, plan: Plan
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
    z_pass, z_fail = plan.z_pass(), plan.z_fail()
    zb = stats.norm.ppf(PLANNING_POWER)
    # one-sample binomial sample size: null spread at the boundary, alternative at the estimate
    spread_null, spread_alt = np.sqrt(r0 * (1 - r0)), np.sqrt(rate * (1 - rate))
    with np.errstate(divide="ignore", invalid="ignore"):
        need_pass = ((z_pass * spread_null + zb * spread_alt) / (r0 - rate)) ** 2
        need_fail = ((z_fail * spread_null + zb * spread_alt) / (rate - r0)) ** 2
    # with no disagreement at all, the exact test passes once (1 - r0)^n <= alpha
    zero = np.log(plan.alpha_pass) / np.log1p(-r0) if r0 > 0 else np.inf
    need = np.where(rate < r0, np.maximum(need_pass, zero), need_fail)
    need = np.where(np.isfinite(need) & (rate != r0), np.maximum(need, 1.2 * n + 1), np.nan)
    need = np.where(need <= MAX_NEEDED, np.ceil(need), np.nan)
    count = np.broadcast_to(np.int64(n), k.shape).astype(np.int64)
    return Tested(1 - rate, 1 - hi, 1 - lo, p_pass, p_fail, need, count)
