"""Distribution shape: how far the shadow's outputs moved across production's quantiles.

The gating test, `quantile_shift`, reads production's 5 %, 10 %, ..., 95 %
quantiles x_q and asks, for each, which share of the shadow's outputs lies
at or below it: F_s(x_q) - F_p(x_q), the vertical gap between the two CDFs
(a Kolmogorov-Smirnov distance restricted to those points). "Production's
median sits at the shadow's 46th percentile" is a shift of 4 points. The
tolerance (`max_quantile_shift`) is the effect-size floor: a large sample
shows a trivial shift *inside* it, instead of flagging it.

Each gap is a paired mean of 1(s <= x) - 1(p <= x), whose variance comes
from the pairs that fall on opposite sides of x, so no density estimate is
needed and ties, discrete outputs and identical outputs are handled exactly.
Pass: every gap's TOST passes (an intersection-union test: no correction).
Fail: some gap is outside, Bonferroni over the grid.

For familiarity the classic two-sample KS test (unpaired, asymptotic p-value
as `scipy.stats.ks_2samp(method="asymp")`), the PSI with its sample-size
calibrated threshold, and the Stuart-Maxwell test of label shares are
reported too; they never decide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from core.analysis.equivalence import Plan, Tested, full, needed
from core.analysis.model import FloatArray, IntArray

GRID = np.arange(1, 20) / 20  # production's 5 % ... 95 % quantiles
PSI_BINS = 10
PSI_PLAIN_RULE = 0.1  # the common "PSI > 0.1 means drift" rule, for comparison
_PSI_FLOOR = 1e-4  # share given to an empty bin, as common PSI tools do


def lower_quantiles(sorted_rows: FloatArray, levels: FloatArray) -> FloatArray:
    """Lower empirical quantiles (the smallest x with F(x) >= q) of sorted rows."""
    n = sorted_rows.shape[-1]
    idx = np.clip(np.ceil(levels * n).astype(np.int64) - 1, 0, n - 1)
    out: FloatArray = sorted_rows[..., idx]
    return out


@dataclass(frozen=True)
class ShapeTested(Tested):
    level: FloatArray  # the grid level with the largest gap


def quantile_shift(
    production: FloatArray,
    shadow: FloatArray,
    tolerance: float,
    alpha: float,
    plan: Plan,
    sorted_production: FloatArray | None = None,
) -> ShapeTested:
    """Largest gap F_s(x_q) - F_p(x_q) over production's grid quantiles x_q, rows (R, n)."""
    runs, n = production.shape
    k = len(GRID)
    count = np.full(runs, n, dtype=np.int64)
    if n == 0:
        nan = full((runs,), np.nan)
        one = full((runs,), 1.0)
        return ShapeTested(nan, nan, nan, one, one, nan, count, nan)
    if sorted_production is None:
        sorted_production = np.sort(production, axis=-1)
    x = lower_quantiles(sorted_production, GRID)
    at_or_below_p = np.empty((runs, k))
    at_or_below_s = np.empty((runs, k))
    discordant = np.empty((runs, k))
    for r in range(runs):
        # a value v is at or below x_j exactly when j >= (number of grid points below v)
        a = np.searchsorted(x[r], production[r], side="left")
        b = np.searchsorted(x[r], shadow[r], side="left")
        at_or_below_p[r] = np.cumsum(np.bincount(a, minlength=k + 1))[:k]
        at_or_below_s[r] = np.cumsum(np.bincount(b, minlength=k + 1))[:k]
        lo_ = np.cumsum(np.bincount(np.minimum(a, b), minlength=k + 1))[:k]
        hi_ = np.cumsum(np.bincount(np.maximum(a, b), minlength=k + 1))[:k]
        discordant[r] = lo_ - hi_  # pairs with exactly one side at or below x_j
    gap = (at_or_below_s - at_or_below_p) / n
    var = discordant / n - gap**2
    # With few discordant pairs the plug-in variance is too small to trust; never let it go
    # below that of the largest discordance rate that zero observed discordances allow.
    floor = 1.0 - alpha ** (1.0 / n)
    var = np.maximum(var, floor * (1 - floor))
    se = np.sqrt(var / max(n - 1, 1))
    eps = tolerance
    p_pass_j = np.maximum(stats.norm.cdf((gap - eps) / se), stats.norm.cdf((-gap - eps) / se))
    size = np.abs(gap)
    p_fail_j = stats.norm.sf((size - eps) / se) + stats.norm.sf((size + eps) / se)
    p_pass = p_pass_j.max(axis=-1)
    p_fail = np.minimum(1.0, k * p_fail_j.min(axis=-1))
    worst = np.argmax(size, axis=-1)
    rows = np.arange(runs)
    estimate = gap[rows, worst]
    z = stats.norm.ppf(1 - alpha)
    low = np.maximum(size - z * se, 0.0).max(axis=-1)
    high = (size + z * se).max(axis=-1)
    unit_sd = np.sqrt(var)
    z_pass, z_fail = plan.z_pass(), plan.z_fail(tests=k)
    # the largest of 19 noisy gaps overstates the true one: plan with each gap shrunk by one
    # standard error toward zero
    need_pass = needed(n, unit_sd, eps - np.maximum(size - se, 0.0), z_pass)
    need_fail = needed(n, unit_sd, size - eps, z_fail)
    outside = size > eps
    need = np.where(
        outside.any(axis=-1),
        np.where(outside, need_fail, np.inf).min(axis=-1),
        np.where(size < eps, need_pass, np.nan).max(axis=-1),
    )
    need = np.where(np.isfinite(need), need, np.nan)
    return ShapeTested(estimate, low, high, p_pass, p_fail, need, count, GRID[worst])


# ---------------------------------------------------------------- for familiarity


def classic_ks(production: FloatArray, shadow: FloatArray) -> tuple[float, float]:
    """Two-sample KS statistic and its asymptotic p-value, as ks_2samp(method="asymp")
    computes them, of two *sorted* samples; unpaired, so conservative for positively
    correlated pairs."""
    n, m = len(production), len(shadow)
    if n == 0 or m == 0:
        return float("nan"), float("nan")
    # the largest gap between the two step functions is reached at a data point
    d = max(
        _largest_gap(production, shadow, n, m),
        _largest_gap(shadow, production, m, n),
    )
    en = n * m / (n + m)
    p = float(np.clip(stats.kstwo.sf(d, max(np.round(en), 1.0)), 0.0, 1.0))
    return d, p


def _largest_gap(at: FloatArray, other: FloatArray, n_at: int, n_other: int) -> float:
    """max |F_at(x) - F_other(x)| over the points x of `at` (both sorted)."""
    own = (
        np.searchsorted(at, at, side="right")
        if np.any(at[1:] == at[:-1])
        else np.arange(1, n_at + 1)
    )
    below = np.searchsorted(other, at, side="right")
    return float(np.max(np.abs(own / n_at - below / n_other)))


def _linear_quantiles(sorted_values: FloatArray, levels: FloatArray) -> FloatArray:
    """np.quantile's default (linear) quantiles of a sorted array, without re-sorting it."""
    pos = levels * (len(sorted_values) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(sorted_values) - 1)
    out: FloatArray = sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])
    return out


def psi_from_counts(expected: FloatArray, actual: FloatArray) -> float:
    """Population stability index of two count vectors; empty bins get a 1e-4 share."""
    e = np.maximum(expected / expected.sum(), _PSI_FLOOR)
    a = np.maximum(actual / actual.sum(), _PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_numbers(production: FloatArray, shadow: FloatArray) -> tuple[float, int]:
    """PSI over production's deciles (fewer bins when deciles tie) of two *sorted* samples;
    returns (psi, bins)."""
    if len(production) == 0:
        return float("nan"), 0
    edges = np.unique(_linear_quantiles(production, np.arange(1, PSI_BINS) / PSI_BINS))
    bins = len(edges) + 1
    # bin k holds [edge k-1, edge k): count the values below each edge
    expected = np.diff(np.searchsorted(production, edges), prepend=0, append=len(production))
    actual = np.diff(np.searchsorted(shadow, edges), prepend=0, append=len(shadow))
    return psi_from_counts(expected.astype(float), actual.astype(float)), bins


def psi_labels(production: IntArray, shadow: IntArray, classes: int) -> tuple[float, int]:
    """PSI over class labels; returns (psi, number of classes seen)."""
    if len(production) == 0:
        return float("nan"), 0
    expected = np.bincount(production, minlength=classes).astype(float)
    actual = np.bincount(shadow, minlength=classes).astype(float)
    seen = (expected + actual) > 0
    return psi_from_counts(expected[seen], actual[seen]), int(seen.sum())


def psi_threshold(n: int, m: int, bins: int, alpha: float) -> float:
    """PSI an unchanged distribution exceeds with probability alpha at these sample sizes.

    PSI is the symmetric KL divergence; for two independent samples of one
    distribution it is close to (1/n + 1/m) * chi-square(bins - 1). For n = m
    = 100 and 10 bins the plain 0.1 rule is exceeded 83 % of the time.
    """
    if n == 0 or m == 0 or bins < 2:
        return float("nan")
    return float((1 / n + 1 / m) * stats.chi2.ppf(1 - alpha, bins - 1))


def psi_p_value(psi: float, n: int, m: int, bins: int) -> float:
    if not np.isfinite(psi) or bins < 2:
        return float("nan")
    return float(stats.chi2.sf(psi / (1 / n + 1 / m), bins - 1))


def stuart_maxwell(
    production: IntArray, shadow: IntArray, classes: int
) -> tuple[float, int, float]:
    """Paired test of equal label shares (chi-square, classes - 1 df); (statistic, df, p)."""
    if len(production) == 0 or classes < 2:
        return float("nan"), 0, float("nan")
    table = np.bincount(production * classes + shadow, minlength=classes * classes)
    table = table.reshape(classes, classes).astype(float)
    d = table.sum(axis=1) - table.sum(axis=0)
    cov = -(table + table.T)
    np.fill_diagonal(cov, table.sum(axis=1) + table.sum(axis=0) - 2 * np.diag(table))
    keep = np.diag(cov) > 0  # classes no pair moved into or out of carry no information
    d, cov = d[keep], cov[np.ix_(keep, keep)]
    if len(d) < 2:
        return 0.0, 0, 1.0
    d, cov = d[:-1], cov[:-1, :-1]  # shares sum to one: drop one class
    stat = float(d @ np.linalg.pinv(cov) @ d)
    df = len(d)
    return stat, df, float(stats.chi2.sf(stat, df))
