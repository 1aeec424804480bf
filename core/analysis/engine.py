"""Which metrics a capture gets, scored for R runs at once, and the verdict they add up to.

`evaluate` is the one assembly of the analysis: `analyze` runs it on one
capture (R = 1) and the error-rate suite on a thousand simulated ones, so
the simulations measure exactly what users get.

Gating metrics per kind of output:

- numbers: mean shift (TOST, production SD units) and quantile shift;
- labels: agreement;
- probabilities: agreement of the most likely class, and for each class
  (only the positive class of two) the mean shift and quantile shift of its
  probability;
- vectors: mean shift and quantile shift of each output;
- always: error rate; with latencies on both sides, p99 latency ratio.

Information only (never decide): mean absolute change, the classic KS
test, PSI with its sample-size threshold, label-share tests, p50 latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core.analysis import shape
from core.analysis.equivalence import MAX_NEEDED, Plan, Tested, agreement, full, mean_shift
from core.analysis.model import BoolArray, FloatArray, IntArray, OutputKind, PairedSample
from core.analysis.multiplicity import INCONCLUSIVE, decide, look_alpha
from core.analysis.operational import error_rate, latency_ratio
from core.spec import AnalysisSpec

GROWTH = 10  # an inconclusive analysis asks for at most this many times the pairs it had


@dataclass(frozen=True)
class Batch:
    """R runs of paired outputs. Outputs hold only the pairs both sides answered,
    (R, n) or (R, n, k); error flags and latencies hold every pair, (R, N)."""

    kind: OutputKind
    production: npt.NDArray[Any]
    shadow: npt.NDArray[Any]
    production_error: BoolArray
    shadow_error: BoolArray
    production_ms: FloatArray | None = None
    shadow_ms: FloatArray | None = None
    classes: int = 0  # LABELS: codes run from 0 to classes - 1

    @property
    def runs(self) -> int:
        return int(self.production_error.shape[0])

    @property
    def pairs(self) -> int:
        return int(self.production_error.shape[1])

    @property
    def compared(self) -> int:
        return int(self.production.shape[1])

    @classmethod
    def of(cls, sample: PairedSample) -> Batch:
        ok = sample.both_ok
        # without errors every pair is compared: the outputs are used as they are, not copied
        every = bool(ok.all())
        production_ms = shadow_ms = None
        if sample.production_ms is not None and sample.shadow_ms is not None:
            # errors are judged by the error rate: only successful calls count for latency
            production_ms = _succeeded(sample.production_ms, sample.production_error)[None]
            shadow_ms = _succeeded(sample.shadow_ms, sample.shadow_error)[None]
        return cls(
            kind=sample.kind,
            production=(sample.production if every else sample.production[ok])[None],
            shadow=(sample.shadow if every else sample.shadow[ok])[None],
            production_error=sample.production_error[None],
            shadow_error=sample.shadow_error[None],
            production_ms=production_ms,
            shadow_ms=shadow_ms,
            classes=len(sample.labels),
        )


def _succeeded(ms: FloatArray, error: BoolArray) -> FloatArray:
    """Latencies with NaN (not measured) where the call failed."""
    if not error.any():
        return ms
    out: FloatArray = np.where(error, np.nan, ms)
    return out


Family = Literal["equivalence", "shape", "operational", "information"]


@dataclass
class MetricRows:
    """One metric over R runs."""

    name: str
    family: Family
    unit: str
    threshold: float | None
    gating: bool
    estimate: FloatArray
    low: FloatArray | None = None
    high: FloatArray | None = None
    p_pass: FloatArray | None = None
    p_fail: FloatArray | None = None
    p_value: FloatArray | None = None  # information metrics: test of no difference
    needed: FloatArray | None = None  # in pairs of `count`
    count: IntArray | None = None
    output: str | None = None  # which output of a vector, e.g. "class 1"
    extra: dict[str, FloatArray] = field(default_factory=dict)
    outcome: npt.NDArray[np.int64] | None = None  # filled in by `evaluate`
    p_fail_adjusted: FloatArray | None = None


@dataclass
class Evaluation:
    kind: OutputKind
    pairs: int
    compared: int
    alpha: float  # spent by this look
    look: int
    metrics: list[MetricRows]
    verdict: npt.NDArray[np.int64]  # (R,) multiplicity.PASS / FAIL / INCONCLUSIVE
    needed: FloatArray  # (R,) total pairs estimated to settle an inconclusive run; NaN: none

    @property
    def gating(self) -> list[MetricRows]:
        return [m for m in self.metrics if m.gating]


def _gated(
    name: str, family: Family, unit: str, threshold: float, t: Tested, **kw: Any
) -> MetricRows:
    return MetricRows(
        name=name, family=family, unit=unit, threshold=threshold, gating=True,
        estimate=t.estimate, low=t.low, high=t.high, p_pass=t.p_pass, p_fail=t.p_fail,
        needed=t.needed, count=t.count, **kw,
    )  # fmt: skip


def _gating_count(batch: Batch) -> int:
    per_output = {OutputKind.NUMBERS: 2, OutputKind.LABELS: 1}
    k = batch.production.shape[2] if batch.production.ndim == 3 else 1
    if batch.kind is OutputKind.PROBABILITIES:
        outputs = 1 + 2 * len(_probability_columns(k))
    elif batch.kind is OutputKind.VECTORS:
        outputs = 2 * k
    else:
        outputs = per_output[batch.kind]
    latency = int(batch.production_ms is not None and batch.shadow_ms is not None)
    return outputs + 1 + latency


def _probability_columns(k: int) -> list[int]:
    return [1] if k == 2 else list(range(k))  # with two classes one column says it all


def evaluate(batch: Batch, spec: AnalysisSpec, look: int = 1) -> Evaluation:
    """Score R runs; `look` counts the analyses of one shadow so far, this one included."""
    alpha = look_alpha(spec.alpha, look)
    # sample-size estimates plan for the next look, which spends less (Holm's first step)
    following = look_alpha(spec.alpha, look + 1)
    plan = Plan(alpha_pass=following, alpha_fail=following / _gating_count(batch))
    metrics: list[MetricRows] = []
    p, s = batch.production, batch.shadow
    if batch.kind is OutputKind.NUMBERS:
        metrics += _numbers(p, s, spec, alpha, plan, None)
    elif batch.kind is OutputKind.LABELS:
        metrics += _labels(p, s, batch.classes, spec, alpha, plan)
    else:
        k = p.shape[2]
        if batch.kind is OutputKind.PROBABILITIES:
            top_p, top_s = np.argmax(p, axis=-1), np.argmax(s, axis=-1)
            metrics += _labels(top_p, top_s, k, spec, alpha, plan, "top class")
            columns, word = _probability_columns(k), "class"
        else:
            columns, word = list(range(k)), "output"
        for c in columns:
            metrics += _numbers(p[..., c], s[..., c], spec, alpha, plan, f"{word} {c}")
    metrics += _operational(batch, spec, alpha, plan)

    gating = [m for m in metrics if m.gating]
    p_pass = np.stack([_arr(m.p_pass) for m in gating], axis=-1)
    p_fail = np.stack([_arr(m.p_fail) for m in gating], axis=-1)
    counts = np.stack([_arr(m.count) for m in gating], axis=-1)
    outcome, adjusted, verdict = decide(p_pass, p_fail, counts >= spec.min_pairs, alpha)
    for i, m in enumerate(gating):
        m.outcome, m.p_fail_adjusted = outcome[:, i], adjusted[:, i]
        if m.count is not None and m.needed is not None:
            # a metric below min_pairs needs at least min_pairs
            short = m.count < spec.min_pairs
            m.needed = np.where(short, np.fmax(m.needed, spec.min_pairs), m.needed)
    needed = _needed_total(gating, outcome, verdict, batch.pairs, spec.min_pairs)
    return Evaluation(
        batch.kind, batch.pairs, batch.compared, alpha, look, metrics, verdict, needed
    )


def _arr(x: npt.NDArray[Any] | None) -> npt.NDArray[Any]:
    assert x is not None
    return x


def _needed_total(
    gating: list[MetricRows],
    outcome: npt.NDArray[np.int64],
    verdict: npt.NDArray[np.int64],
    pairs: int,
    min_pairs: int,
) -> FloatArray:
    """Total pairs at which to look again: where the slowest undecided metric should settle,
    but at most GROWTH times the pairs at hand (and never below min_pairs); NaN when some
    undecided metric has no estimate (no sample size settles it at the observed difference)."""
    total = np.zeros(len(verdict))
    floor = np.zeros(len(verdict))
    for i, m in enumerate(gating):
        count = _arr(m.count).astype(np.float64)
        undecided = outcome[:, i] == INCONCLUSIVE
        with np.errstate(divide="ignore", invalid="ignore"):
            per_pair = pairs / count  # its count is of pairs it could use: scale to all pairs
            scaled = np.ceil(_arr(m.needed) * per_pair)
            short = undecided & (count < min_pairs)
            floor = np.where(short, np.fmax(floor, np.ceil(min_pairs * per_pair)), floor)
        # an unknown (NaN) need of an undecided metric makes the total unknown
        total = np.where(undecided, np.maximum(total, scaled), total)
    total = np.where(total <= MAX_NEEDED, total, np.nan)
    # estimates from a small sample are rough: look again after at most GROWTH times as many
    total = np.where(
        np.isfinite(total), np.maximum(np.minimum(total, GROWTH * pairs), floor), total
    )
    total = np.where(total > pairs, total, np.nan)
    out: FloatArray = np.where(verdict == INCONCLUSIVE, total, np.nan)
    return out


# ---------------------------------------------------------------- numbers


@dataclass(frozen=True)
class _Moments:
    """Production's mean and the sums of squared and of fourth powers of its deviations, per
    run: the scale and the margin's variance both read them, so they are computed once."""

    n: int
    mean: FloatArray
    square_sum: FloatArray
    fourth_sum: FloatArray

    @classmethod
    def of(cls, p: FloatArray) -> _Moments:
        n = p.shape[-1]
        if n == 0:
            nan = full((p.shape[0],), np.nan)
            return cls(0, nan, nan, nan)
        mean = p.mean(axis=-1, keepdims=True)
        squares = p - mean
        np.square(squares, out=squares)
        fourth = np.einsum("...i,...i->...", squares, squares)
        return cls(n, mean[:, 0], squares.sum(axis=-1), fourth)


def _scale(moments: _Moments, s: FloatArray) -> FloatArray:
    """Production's SD per run; when production is constant the shadow's SD, and when both
    are, the size of production's value (1 when that is 0): a relative tolerance."""
    n = moments.n
    if n < 2:
        return np.ones(s.shape[0])
    sd_p = np.sqrt(moments.square_sum / (n - 1))
    if np.all(sd_p > 0):
        return sd_p  # the shadow's SD is only needed where production is constant
    sd_s = s.std(axis=-1, ddof=1)
    size = np.abs(moments.mean)
    out: FloatArray = np.where(
        sd_p > 0, sd_p, np.where(sd_s > 0, sd_s, np.where(size > 0, size, 1.0))
    )
    return out


def _margin_var(moments: _Moments, margin: FloatArray) -> FloatArray:
    """Per-pair variance of margin * (sample SD / SD): margin^2 (kurtosis - 1) / 4."""
    n = moments.n
    if n < 4:
        return np.zeros(margin.shape)
    m2, m4 = moments.square_sum / n, moments.fourth_sum / n
    with np.errstate(divide="ignore", invalid="ignore"):
        kurtosis = np.where(m2 > 0, m4 / m2**2, 1.0)
    out: FloatArray = margin**2 * np.maximum(kurtosis - 1, 0) / 4
    return out


def _numbers(
    p: FloatArray,
    s: FloatArray,
    spec: AnalysisSpec,
    alpha: float,
    plan: Plan,
    output: str | None,
) -> list[MetricRows]:
    runs, n = p.shape
    moments = _Moments.of(p)
    scale = _scale(moments, s)
    d = s - p
    d /= scale[:, None]  # in place: a million pairs make one array of differences, not two
    margin = np.full(runs, spec.mean_shift_sd)
    mean = mean_shift(d, margin, alpha, plan, _margin_var(moments, margin))
    # each side is sorted once: the quantile shift, KS and PSI all read the sorted rows
    sorted_p, sorted_s = np.sort(p, axis=-1), np.sort(s, axis=-1)
    q = shape.quantile_shift(p, s, spec.max_quantile_shift, alpha, plan, sorted_p, sorted_s)
    out = [
        _gated("mean_shift", "equivalence", "sd", spec.mean_shift_sd, mean, output=output,
               extra={"scale": scale}),
        _gated("quantile_shift", "shape", "share", spec.max_quantile_shift, q, output=output,
               extra={"level": q.level}),
    ]  # fmt: skip
    absolute = np.abs(d).mean(axis=-1) if n else full((runs,), np.nan)
    same = (d == 0).mean(axis=-1) if n else full((runs,), np.nan)
    out.append(
        MetricRows("mean_abs_change", "information", "sd", None, False, absolute, output=output,
                   extra={"identical": same})
    )  # fmt: skip
    ks = np.array([shape.classic_ks(sorted_p[r], sorted_s[r]) for r in range(runs)])
    ks = ks.reshape(runs, 2)
    out.append(
        MetricRows("ks", "information", "share", None, False, ks[:, 0], p_value=ks[:, 1],
                   output=output)
    )  # fmt: skip
    psi = [shape.psi_numbers(sorted_p[r], sorted_s[r]) for r in range(runs)]
    out.append(_psi(psi, n, spec.alpha, output))
    return out


def _psi(values: list[tuple[float, int]], n: int, alpha: float, output: str | None) -> MetricRows:
    psi = np.array([v for v, _ in values])
    bins = np.array([b for _, b in values], dtype=np.float64)
    threshold = np.array([shape.psi_threshold(n, n, int(b), alpha) for b in bins])
    p_value = np.array([shape.psi_p_value(v, n, n, int(b)) for v, b in values])
    return MetricRows(
        "psi", "information", "psi", None, False, psi, p_value=p_value, output=output,
        extra={"threshold": threshold, "bins": bins, "plain_rule": np.full(len(psi), shape.PSI_PLAIN_RULE)},
    )  # fmt: skip


# ---------------------------------------------------------------- labels


def _labels(
    p: IntArray,
    s: IntArray,
    classes: int,
    spec: AnalysisSpec,
    alpha: float,
    plan: Plan,
    output: str | None = None,
) -> list[MetricRows]:
    runs, n = p.shape
    agree = agreement(p, s, spec.min_agreement, alpha, plan)
    out = [_gated("agreement", "equivalence", "share", spec.min_agreement, agree, output=output)]
    sm = np.array([shape.stuart_maxwell(p[r], s[r], classes) for r in range(runs)]).reshape(runs, 3)
    shares = np.zeros(runs)
    for r in range(runs):
        if n and classes:
            move = np.bincount(s[r], minlength=classes) - np.bincount(p[r], minlength=classes)
            shares[r] = np.abs(move).max() / n
    out.append(
        MetricRows("label_shift", "information", "share", None, False, shares, p_value=sm[:, 2],
                   output=output, extra={"chi2": sm[:, 0], "df": sm[:, 1]})
    )  # fmt: skip
    psi = [shape.psi_labels(p[r], s[r], classes) for r in range(runs)]
    out.append(_psi(psi, n, spec.alpha, output))
    return out


# ---------------------------------------------------------------- operational


def _operational(batch: Batch, spec: AnalysisSpec, alpha: float, plan: Plan) -> list[MetricRows]:
    errors = error_rate(
        batch.production_error, batch.shadow_error, spec.max_error_rate_increase, alpha, plan
    )
    out = [
        _gated("error_rate", "operational", "share", spec.max_error_rate_increase, errors,
               extra={"production": batch.production_error.mean(axis=-1),
                      "shadow": batch.shadow_error.mean(axis=-1)})
    ]  # fmt: skip
    if batch.production_ms is None or batch.shadow_ms is None:
        return out
    tail = latency_ratio(
        batch.production_ms, batch.shadow_ms, spec.max_latency_ratio, alpha, plan,
        spec.latency_slack_ms,
    )  # fmt: skip
    quantiles = tail.quantiles
    out.append(
        _gated("latency_p99", "operational", "ratio", spec.max_latency_ratio, tail,
               extra={"production_ms": quantiles["production_p99"],
                      "shadow_ms": quantiles["shadow_p99"],
                      "allowed_ms": quantiles["allowed_p99"],
                      "slack_ms": np.full(batch.runs, spec.latency_slack_ms),
                      "timed": _arr(tail.count).astype(np.float64)})
    )  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = quantiles["shadow_p50"] / quantiles["production_p50"]
    out.append(
        MetricRows("latency_p50", "information", "ratio", None, False, ratio,
                   extra={"production_ms": quantiles["production_p50"],
                          "shadow_ms": quantiles["shadow_p50"]})
    )  # fmt: skip
    return out
