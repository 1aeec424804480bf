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
_KS_STEP = 8  # the KS scan cuts at every 64th point, then every 8th, then at every point


def lower_quantiles(sorted_rows: FloatArray, levels: FloatArray) -> FloatArray:
    """Lower empirical quantiles (the smallest x with F(x) >= q) of sorted rows."""
    n = sorted_rows.shape[-1]
    idx = np.clip(np.ceil(levels * n).astype(np.int64) - 1, 0, n - 1)
    out: FloatArray = sorted_rows[..., idx]
    return out


def _at_or_below(sorted_rows: FloatArray, x: FloatArray) -> IntArray:
    """How many values of each sorted row are at or below each of that row's points x."""
    out: IntArray = np.array(
        [
            np.searchsorted(row, points, side="right")
            for row, points in zip(sorted_rows, x, strict=True)
        ],
        dtype=np.int64,
    ).reshape(x.shape)
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
    sorted_shadow: FloatArray | None = None,
) -> ShapeTested:
    """Largest gap F_s(x_q) - F_p(x_q) over production's grid quantiles x_q, rows (R, n).
    `sorted_*`: the same rows sorted, when the caller has them already."""
    runs, n = production.shape
    k = len(GRID)
    count = np.full(runs, n, dtype=np.int64)
    if n == 0:
        nan = full((runs,), np.nan)
        one = full((runs,), 1.0)
        return ShapeTested(nan, nan, nan, one, one, nan, count, nan)
    if sorted_production is None:
        sorted_production = np.sort(production, axis=-1)
    if sorted_shadow is None:
        sorted_shadow = np.sort(shadow, axis=-1)
    x = lower_quantiles(sorted_production, GRID)
    at_or_below_p = _at_or_below(sorted_production, x)
    at_or_below_s = _at_or_below(sorted_shadow, x)
    # a pair has both sides at or below x exactly when its larger side is; the rest of the
    # pairs with some side at or below x have exactly one there
    larger = np.maximum(production, shadow)
    # counting a flat row is several times faster than summing along an axis
    both = np.array(
        [
            [np.count_nonzero(row <= v) for v in points]
            for row, points in zip(larger, x, strict=True)
        ],
        dtype=np.int64,
    ).reshape(runs, k)
    discordant = at_or_below_p + at_or_below_s - 2 * both
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
    d = ks_statistic(production, shadow)
    en = n * m / (n + m)
    p = float(np.clip(stats.kstwo.sf(d, max(np.round(en), 1.0)), 0.0, 1.0))
    return d, p


def ks_statistic(a: FloatArray, b: FloatArray) -> float:
    """max |F_a(x) - F_b(x)| over the data points of two sorted, non-empty samples, each F
    counting the values at or below x and dividing by the sample size, as ks_2samp does.

    ks_2samp searches both samples for each of the n + m points. Here the line is first
    cut at every 64th point of `a`. Between two cuts each count stays between its values
    at the two ends, which bounds the gap there: only the stretches whose bound exceeds
    the largest gap seen so far are cut again, at every 8th point, and only those still
    open then are evaluated point by point. The answer is the same; in typical samples a
    few percent of the points are searched."""
    n, m = len(a), len(b)
    if n == m and np.array_equal(a, b):
        return 0.0  # identical outputs: every gap is 0, yet the bounds would leave all open
    a_distinct = _distinct(a)
    # the open stretches (x_lo, x_hi], each given by the counts of a and b at its two ends;
    # at first the whole line: from below every value to above every value
    lo_a, lo_b, hi_a, hi_b = (np.array([c]) for c in (0, 0, n, m))
    seen = 0.0
    step = _KS_STEP**2
    while step > 1:
        # cut each open stretch at every step-th point of `a` inside it (its own points are
        # a[lo_a:hi_a]), and keep the pieces whose bound exceeds every gap seen so far
        idx, parent = _spans(lo_a, hi_a, step)
        cut_a = _own_counts(a, idx, a_distinct)
        cut_b = np.searchsorted(b, a[idx], side="right")
        seen = max(seen, float(np.max(np.abs(cut_a / n - cut_b / m), initial=0.0)))
        lo_a, lo_b, hi_a, hi_b = _pieces(lo_a, lo_b, hi_a, hi_b, cut_a, cut_b, parent)
        # rounding is monotone, so these bounds also hold for the gaps as computed in floats
        bound = np.maximum(hi_a / n - lo_b / m, hi_b / m - lo_a / n)
        keep = bound > seen
        if not keep.any():
            return seen
        lo_a, lo_b, hi_a, hi_b = lo_a[keep], lo_b[keep], hi_a[keep], hi_b[keep]
        step //= _KS_STEP
    # every value inside the stretches still open, once: a stretch holds whole runs of equal
    # values, so the last of each run is counted by its position
    ia, ib = _run_ends(a, _spans(lo_a, hi_a)[0]), _run_ends(b, _spans(lo_b, hi_b)[0])
    at_a = (ia + 1) / n - np.searchsorted(b, a[ia], side="right") / m
    at_b = np.searchsorted(a, b[ib], side="right") / n - (ib + 1) / m
    return max(
        seen, float(np.max(np.abs(at_a), initial=0.0)), float(np.max(np.abs(at_b), initial=0.0))
    )


def _run_ends(sorted_values: FloatArray, idx: IntArray) -> IntArray:
    """The indices among `idx` (ascending) of the last value of each run of equal values."""
    if len(idx) == 0:
        return idx
    values = sorted_values[idx]
    out: IntArray = idx[np.append(values[1:] != values[:-1], True)]
    return out


def _pieces(
    lo_a: IntArray,
    lo_b: IntArray,
    hi_a: IntArray,
    hi_b: IntArray,
    cut_a: IntArray,
    cut_b: IntArray,
    parent: IntArray,
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """The pieces of stretches cut at points with counts (cut_a, cut_b), in order, each
    cut belonging to stretch `parent`: the counts at both ends of every piece."""
    cuts = np.bincount(parent, minlength=len(lo_a))
    size = cuts + 2  # ends of a stretch's pieces: its own two ends and its cuts
    first = np.cumsum(size) - size
    ends_a, ends_b = np.empty(int(size.sum()), np.int64), np.empty(int(size.sum()), np.int64)
    last = first + size - 1
    ends_a[first], ends_b[first], ends_a[last], ends_b[last] = lo_a, lo_b, hi_a, hi_b
    at = first[parent] + 1 + np.arange(len(parent)) - (np.cumsum(cuts) - cuts)[parent]
    ends_a[at], ends_b[at] = cut_a, cut_b
    left = np.ones(len(ends_a), dtype=bool)
    left[last] = False  # a piece runs from each end to the next one of the same stretch
    start = np.flatnonzero(left)
    return ends_a[start], ends_b[start], ends_a[start + 1], ends_b[start + 1]


def _distinct(sorted_values: FloatArray) -> bool:
    return not bool(np.any(sorted_values[1:] == sorted_values[:-1]))


def _own_counts(sorted_values: FloatArray, idx: IntArray, distinct: bool) -> IntArray:
    """How many values of a sorted array are at or below its values at `idx`."""
    if distinct:
        out: IntArray = idx + 1
        return out
    return np.searchsorted(sorted_values, sorted_values[idx], side="right")


def _spans(starts: IntArray, stops: IntArray, step: int = 1) -> tuple[IntArray, IntArray]:
    """The multiples of `step` in the half-open ranges [starts[i], stops[i]), in order, and
    the range i each one lies in."""
    first = -(-starts // step) * step  # the first multiple in each range
    lengths = np.maximum(-(-(stops - first) // step), 0)
    offset = np.cumsum(lengths) - lengths  # where each range starts in the output
    idx: IntArray = np.repeat(first - step * offset, lengths) + step * np.arange(lengths.sum())
    return idx, np.repeat(np.arange(len(starts)), lengths)


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
