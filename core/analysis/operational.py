"""Operational comparison: the shadow's error rate and tail latency against production's.

Error rate: paired (both versions saw the same request), by Tango's score
test for a difference of paired proportions with a margin (Tango 1998), with
a continuity correction: pass when the shadow's error rate is shown to
exceed production's by less than `max_error_rate_increase`, fail when shown
to exceed it by more.

Latency: the shadow's p99 against production's, distribution-free. The
allowance is h(Q_p) = max(r * Q_p, Q_p + slack): `max_latency_ratio` r, or
`latency_slack_ms` more, whichever allows more, so that the jitter of
sub-millisecond calls never decides. Q_s <= h(Q_p) is tested as "the share
of shadow calls slower than h(production's p99) is at most 1 %" (exact
binomial), with production's p99 replaced by an order-statistic confidence
bound; the two error allowances are split evenly (Bonferroni). Only calls
that succeeded count: errors are judged by the error rate.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from core.analysis.equivalence import MAX_NEEDED, PLANNING_POWER, Plan, Tested, full, needed
from core.analysis.model import BoolArray, FloatArray

LATENCY_QUANTILE = 0.99
_SAMPLE = 16_384  # latencies read to bracket an order statistic before all are counted
_PASS_CORRECTION, _FAIL_CORRECTION = 0.5, 1.5  # continuity corrections, in error counts


# ---------------------------------------------------------------- error rate (Tango)


def _tango(b: FloatArray, c: FloatArray, n: FloatArray, delta0: FloatArray) -> FloatArray:
    """Tango's score statistic for H0: P(b-cell) - P(c-cell) = delta0 (decreasing in delta0)."""
    flip = delta0 < 0  # the formula holds for delta0 >= 0; mirror the table otherwise
    x12, x21, d0 = np.where(flip, c, b), np.where(flip, b, c), np.abs(delta0)
    a_ = 2 * n
    b_ = -x12 - x21 + (2 * n - x12 + x21) * d0
    c_ = -x21 * d0 * (1 - d0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p21 = (np.sqrt(np.maximum(b_**2 - 4 * a_ * c_, 0)) - b_) / (2 * a_)
        t = (x12 - x21 - n * d0) / np.sqrt(n * (2 * p21 + d0 * (1 - d0)))
    t = np.where(np.isnan(t), 0.0, t)  # 0/0: nothing differs and the margin is 0
    out: FloatArray = np.where(flip, -t, t)
    return out


def error_rate(
    production: BoolArray, shadow: BoolArray, margin: float, alpha: float, plan: Plan
) -> Tested:
    """Shadow error rate minus production's (per pair), against +`margin`."""
    n_pairs = production.shape[-1]
    n = np.full(production.shape[:-1], float(n_pairs))
    b = (shadow & ~production).sum(axis=-1).astype(np.float64)  # only the shadow failed
    c = (~shadow & production).sum(axis=-1).astype(np.float64)  # only production failed
    count = np.full(production.shape[:-1], n_pairs, dtype=np.int64)
    if n_pairs == 0:
        nan, one = full(n.shape, np.nan), full(n.shape, 1.0)
        return Tested(nan, nan, nan, one, one, nan, count)
    diff = (b - c) / n
    h = np.full(n.shape, margin)
    # The score test runs liberal with few errors; counting shadow-only errors toward the
    # null (half a count to pass, one and a half to fail) keeps its exact size at or below
    # alpha (checked by enumeration: docs/analysis.md).
    t_pass = _tango(b + _PASS_CORRECTION, c, n, h)
    t_fail = _tango(np.maximum(b - _FAIL_CORRECTION, 0.0), c, n, h)
    p_pass = np.asarray(stats.norm.cdf(t_pass), dtype=np.float64)
    p_fail = np.asarray(stats.norm.sf(t_fail), dtype=np.float64)
    z = float(stats.norm.ppf(1 - alpha))
    low, high = _invert(b, c, n, np.array([[z], [-z]]))  # both ends in one bisection
    var1 = (b + c) / n - diff**2
    z_pass, z_fail = plan.z_pass(), plan.z_fail()
    zero = _pairs_to_pass_without_errors(margin, z_pass)
    need_pass = np.where(var1 > 0, needed(n, np.sqrt(var1), margin - diff, z_pass), zero)
    need_pass = np.where(diff < margin, np.maximum(need_pass, 1.2 * n + 1), np.nan)
    spread = np.sqrt(np.maximum(var1, margin * (1 - margin)))
    need = np.where(diff < margin, need_pass, needed(n, spread, diff - margin, z_fail))
    need = np.where(need <= MAX_NEEDED, np.ceil(need), np.nan)
    return Tested(diff, low, high, p_pass, p_fail, need, count)


@functools.lru_cache(maxsize=64)  # a function of the settings alone: found once, not per look
def _pairs_to_pass_without_errors(margin: float, z: float) -> float:
    """Fewest pairs at which the (corrected) test passes when no call ever failed."""

    def passes(n: float) -> bool:
        t = _tango(np.array([_PASS_CORRECTION]), np.zeros(1), np.array([n]), np.array([margin]))
        return bool(t[0] < -z)

    lo, hi = 1.0, float(MAX_NEEDED)
    if not passes(hi):
        return np.inf
    while hi - lo > 1:
        mid = np.floor((lo + hi) / 2)
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    return hi


def _invert(b: FloatArray, c: FloatArray, n: FloatArray, z: FloatArray) -> FloatArray:
    """The delta0 at which Tango's statistic equals z (bisection; T decreases in delta0);
    `z` broadcasts against the counts, so several levels share the iterations."""
    shape = np.broadcast_shapes(b.shape, z.shape)
    lo, hi = full(shape, -1.0), full(shape, 1.0)
    for _ in range(50):
        mid = (lo + hi) / 2
        above = _tango(b, c, n, mid) > z
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    out: FloatArray = (lo + hi) / 2
    return out


# ---------------------------------------------------------------- tail latency


@dataclass(frozen=True)
class LatencyTested(Tested):
    quantiles: dict[str, FloatArray]  # "production_p50", "shadow_p99", ... in ms


def latency_ratio(
    production_ms: FloatArray,
    shadow_ms: FloatArray,
    max_ratio: float,
    alpha: float,
    plan: Plan,
    slack_ms: float = 0.0,
    q: float = LATENCY_QUANTILE,
) -> LatencyTested:
    """Shadow q-quantile over production's, rows (R, N) with NaN for calls not measured;
    the shadow's may reach max(max_ratio * production's, production's + slack_ms)."""
    runs = production_ms.shape[0]
    est, low, high = full((runs,), np.nan), full((runs,), np.nan), full((runs,), np.nan)
    p_pass, p_fail, need = full((runs,), 1.0), full((runs,), 1.0), full((runs,), np.nan)
    count = np.zeros(runs, dtype=np.int64)
    quantiles = {
        f"{side}_{name}": full((runs,), np.nan)
        for side in ("production", "shadow")
        for name in ("p50", "p99")
    }
    quantiles["allowed_p99"] = full((runs,), np.nan)

    def allowed(x: FloatArray) -> FloatArray:
        out: FloatArray = np.maximum(max_ratio * x, x + slack_ms)
        return out

    for r in range(runs):
        # the tests read a few hundred order statistics around each side's q-quantile and its
        # median, not the whole order: a million latencies are never sorted
        sides = {
            side: _Ranked.of(_measured(ms[r]), q)
            for side, ms in (("production", production_ms), ("shadow", shadow_ms))
        }
        for side, ranked in sides.items():
            if ranked.size:
                quantiles[f"{side}_p50"][r] = ranked.median
                quantiles[f"{side}_p99"][r] = ranked.tail
        count[r] = min(ranked.size for ranked in sides.values())
        if count[r] == 0:
            continue
        quantiles["allowed_p99"][r] = allowed(np.array(quantiles["production_p99"][r]))
        res = _latency_row(sides["production"], sides["shadow"], allowed, alpha, plan, q)
        est[r], low[r], high[r], p_pass[r], p_fail[r], need[r] = res
    return LatencyTested(est, low, high, p_pass, p_fail, need, count, quantiles)


def _measured(ms: FloatArray) -> FloatArray:
    """The latencies that were measured (not NaN); the same array when all were."""
    missing = np.isnan(ms)
    return ms[~missing] if missing.any() else ms


@dataclass(frozen=True)
class _Ranked:
    """What the tests read of one side's latencies, each computed once: the median and the
    q-quantile (lower empirical quantiles), the order statistics X_(j) of the ranks j that
    can bound the q-quantile (`_window`), and for each j the chance that X_(j) lies above
    or at or below the true q-quantile. Found in linear time, without sorting every value."""

    values: npt.NDArray[np.float64]  # every latency, in no particular order
    median: np.float64
    tail: np.float64  # the q-quantile
    window: npt.NDArray[np.float64]  # X_(j) for the ranks j of `_window`, ascending
    below: npt.NDArray[np.float64]  # P(Bin(n, q) < j): X_(j) above the q-quantile
    above: npt.NDArray[np.float64]  # P(Bin(n, q) >= j): X_(j) at or below it

    @classmethod
    def of(cls, values: npt.NDArray[np.float64], q: float) -> _Ranked:
        """The latencies of one side, without NaN; `values` is read, never modified."""
        n = len(values)
        if n == 0:
            nan, none = np.float64("nan"), np.empty(0)
            return cls(values, nan, nan, none, none, none)
        ranks = _window(n, q)
        first, last = int(ranks[0]), int(ranks[-1])
        sample = np.sort(values[:: max(n // _SAMPLE, 1)])
        window = _order_statistics(values, sample, first, last)
        median = _order_statistics(values, sample, _rank(n, 0.5), _rank(n, 0.5))[0]
        below = np.asarray(stats.binom.cdf(ranks - 1, n, q), dtype=np.float64)
        above = np.asarray(stats.binom.sf(ranks - 1, n, q), dtype=np.float64)
        return cls(values, median, window[_rank(n, q) - first], window, below, above)

    @property
    def size(self) -> int:
        return len(self.values)

    def at_or_below(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """How many values are at or below each of the ascending `points`."""
        lo, hi = points[0], points[-1]
        # only the values between the first and the last point need ordering
        between = np.sort(self.values[(self.values > lo) & (self.values <= hi)])
        below = np.count_nonzero(self.values <= lo)
        out: npt.NDArray[np.int64] = below + np.searchsorted(between, points, side="right")
        return out

    def bounds(self, gamma: float) -> tuple[np.float64, np.float64]:
        """One-sided (1 - gamma) order-statistic bounds of the q-quantile; 0 and inf when
        the sample is too small to have them."""
        lower_ok = np.flatnonzero(self.below <= gamma)
        upper_ok = np.flatnonzero(self.above <= gamma)
        low = self.window[lower_ok[-1]] if len(lower_ok) else np.float64(0.0)
        high = self.window[upper_ok[0]] if len(upper_ok) else np.float64("inf")
        return low, high


def _order_statistics(
    values: npt.NDArray[np.float64], sample: npt.NDArray[np.float64], first: int, last: int
) -> npt.NDArray[np.float64]:
    """The order statistics of 1-based ranks first..last, ascending, without ordering every
    value: the sorted regular `sample` of the values brackets them by value, one pass counts
    the values below the bracket and keeps the few inside it, and only those are
    partitioned. When the bracket misses (values ordered against the sample), all values
    are partitioned: the answer is the same either way."""
    n, k = len(values), len(sample)
    # where the ranks fall in the sample, widened by 6 binomial SDs of a sample quantile
    at = np.array([first - 1, last]) * (k / n)
    wide = 6 * np.sqrt(at * (1 - at / k)) + 2
    lo_i, hi_i = int(np.floor(at[0] - wide[0])), int(np.ceil(at[1] + wide[1]))
    lo = sample[lo_i] if lo_i >= 0 else -np.inf
    hi = sample[hi_i] if hi_i < k else np.inf
    below = int(np.count_nonzero(values < lo))
    inside = values[(values >= lo) & (values <= hi)]
    if below < first and below + len(inside) >= last:
        return _sorted_ranks(inside, first - below, last - below)
    return _sorted_ranks(values.copy(), first, last)


def _sorted_ranks(
    values: npt.NDArray[np.float64], first: int, last: int
) -> npt.NDArray[np.float64]:
    """Order statistics first..last (1-based) of `values`, which is reordered in place."""
    # after the partition both ranks hold their order statistics and the values between
    # them lie between them: sorting that stretch orders it
    values.partition([first - 1, last - 1])
    out: npt.NDArray[np.float64] = np.sort(values[first - 1 : last])
    return out


def _latency_row(
    production: _Ranked,
    shadow: _Ranked,
    allowed: Callable[[FloatArray], FloatArray],
    alpha: float,
    plan: Plan,
    q: float,
) -> tuple[float, float, float, float, float, float]:
    n_p, n_s = production.size, shadow.size
    qp = production.tail
    # numpy scalars: a quantile or bound of 0 ms gives inf or NaN here, not an exception
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = shadow.tail / qp
        ratio = float(allowed(np.array(qp)) / qp)  # the allowance as a ratio, for planning
    # production order statistics X_(j) near its q-quantile; h is increasing, so a bound on
    # production's quantile bounds the allowance too
    slower = n_s - shadow.at_or_below(allowed(production.window))  # above h(X_(j))
    # pass: X_(j) is a lower bound of production's quantile (wrong w.p. <= P(Bin(n,q) < j))
    # and few shadow calls are slower than h(X_(j))
    few = stats.binom.cdf(slower, n_s, 1 - q)
    p_pass = min(1.0, 2 * float(np.min(np.maximum(production.below, few))))
    # fail: X_(j) is an upper bound (wrong w.p. <= P(Bin(n,q) >= j)) and many calls are slower
    many = stats.binom.sf(slower - 1, n_s, 1 - q)
    p_fail = min(1.0, 2 * float(np.min(np.maximum(production.above, many))))

    half = alpha / 2
    lp, up = production.bounds(half)
    ls, us = shadow.bounds(half)
    n = min(n_p, n_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = ls / up, us / lp
        # planning only: a normal approximation of the log-ratio, from the bounds' spread
        z = float(stats.norm.ppf(1 - half))
        se = float(np.hypot(np.log(up / lp), np.log(us / ls)) / (2 * z))
        gap = float(np.log(ratio) - np.log(estimate))
    need = float("nan")
    if not np.isfinite(se):
        # no bound yet: the q-quantile has an upper bound once q^n <= alpha / 2
        need = max(2 * float(np.ceil(np.log(half) / np.log(q))), 1.2 * n + 1)
    elif se == 0:
        need = 1.2 * n + 1
    elif np.isfinite(gap) and gap != 0:
        # the next look splits its level between the two bounds, as this one does
        crit = plan.z_fail(tests=2) if gap < 0 else float(stats.norm.ppf(1 - plan.alpha_pass / 2))
        zb = float(stats.norm.ppf(PLANNING_POWER))
        need = max(n * ((crit + zb) * se / abs(gap)) ** 2, 1.2 * n + 1)
    need = float(np.ceil(need)) if need <= MAX_NEEDED else float("nan")
    return float(estimate), float(low), float(high), p_pass, p_fail, need


def _window(n: int, q: float) -> npt.NDArray[np.int64]:
    """1-based ranks of the order statistics that can bound the q-quantile of n values
    (beyond eight binomial SDs the error allowances are below 1e-15)."""
    spread = np.sqrt(n * q * (1 - q))
    return np.arange(max(1, int(n * q - 8 * spread) - 2), min(n, int(n * q + 8 * spread) + 2) + 1)


def _rank(n: int, q: float) -> int:
    """1-based rank of the lower empirical q-quantile of n values."""
    return max(int(np.ceil(q * n)), 1)
