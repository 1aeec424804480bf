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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from core.analysis.equivalence import MAX_NEEDED, PLANNING_POWER, Plan, Tested, full, needed
from core.analysis.model import BoolArray, FloatArray

LATENCY_QUANTILE = 0.99
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
    low, high = _invert(b, c, n, z), _invert(b, c, n, -z)
    var1 = (b + c) / n - diff**2
    z_pass, z_fail = plan.z_pass(), plan.z_fail()
    zero = _pairs_to_pass_without_errors(margin, z_pass)
    need_pass = np.where(var1 > 0, needed(n, np.sqrt(var1), margin - diff, z_pass), zero)
    need_pass = np.where(diff < margin, np.maximum(need_pass, 1.2 * n + 1), np.nan)
    spread = np.sqrt(np.maximum(var1, margin * (1 - margin)))
    need = np.where(diff < margin, need_pass, needed(n, spread, diff - margin, z_fail))
    need = np.where(need <= MAX_NEEDED, np.ceil(need), np.nan)
    return Tested(diff, low, high, p_pass, p_fail, need, count)


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


def _invert(b: FloatArray, c: FloatArray, n: FloatArray, z: float) -> FloatArray:
    """The delta0 at which Tango's statistic equals z (bisection; T decreases in delta0)."""
    lo, hi = full(b.shape, -1.0), full(b.shape, 1.0)
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
        xp = np.sort(production_ms[r][~np.isnan(production_ms[r])])
        xs = np.sort(shadow_ms[r][~np.isnan(shadow_ms[r])])
        for side, x in (("production", xp), ("shadow", xs)):
            if len(x):
                quantiles[f"{side}_p50"][r] = _quantile(x, 0.5)
                quantiles[f"{side}_p99"][r] = _quantile(x, q)
        count[r] = min(len(xp), len(xs))
        if count[r] == 0:
            continue
        quantiles["allowed_p99"][r] = allowed(np.array(quantiles["production_p99"][r]))
        res = _latency_row(xp, xs, allowed, alpha, plan, q)
        est[r], low[r], high[r], p_pass[r], p_fail[r], need[r] = res
    return LatencyTested(est, low, high, p_pass, p_fail, need, count, quantiles)


def _latency_row(
    xp: FloatArray,
    xs: FloatArray,
    allowed: Callable[[FloatArray], FloatArray],
    alpha: float,
    plan: Plan,
    q: float,
) -> tuple[float, float, float, float, float, float]:
    n_p, n_s = len(xp), len(xs)
    qp = _quantile(xp, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = _quantile(xs, q) / qp
        ratio = float(allowed(np.array(qp)) / qp)  # the allowance as a ratio, for planning
    # production order statistics X_(j) near its q-quantile; h is increasing, so a bound on
    # production's quantile bounds the allowance too
    j = _window(n_p, q)
    slower = n_s - np.searchsorted(xs, allowed(xp[j - 1]), side="right")  # above h(X_(j))
    # pass: X_(j) is a lower bound of production's quantile (wrong w.p. <= P(Bin(n,q) < j))
    # and few shadow calls are slower than h(X_(j))
    miss_low = stats.binom.cdf(j - 1, n_p, q)
    few = stats.binom.cdf(slower, n_s, 1 - q)
    p_pass = min(1.0, 2 * float(np.min(np.maximum(miss_low, few))))
    # fail: X_(j) is an upper bound (wrong w.p. <= P(Bin(n,q) >= j)) and many calls are slower
    miss_high = stats.binom.sf(j - 1, n_p, q)
    many = stats.binom.sf(slower - 1, n_s, 1 - q)
    p_fail = min(1.0, 2 * float(np.min(np.maximum(miss_high, many))))

    half = alpha / 2
    lp, up = _bounds(xp, q, half)
    ls, us = _bounds(xs, q, half)
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


def _quantile(sorted_values: FloatArray, q: float) -> float:
    return float(sorted_values[max(int(np.ceil(q * len(sorted_values))) - 1, 0)])


def _bounds(sorted_values: FloatArray, q: float, gamma: float) -> tuple[float, float]:
    """One-sided (1 - gamma) order-statistic bounds of the q-quantile; 0 and inf when the
    sample is too small to have them."""
    n = len(sorted_values)
    j = _window(n, q)
    lower_ok = j[stats.binom.cdf(j - 1, n, q) <= gamma]
    upper_ok = j[stats.binom.sf(j - 1, n, q) <= gamma]
    low = float(sorted_values[lower_ok[-1] - 1]) if len(lower_ok) else 0.0
    high = float(sorted_values[upper_ok[0] - 1]) if len(upper_ok) else float("inf")
    return low, high
