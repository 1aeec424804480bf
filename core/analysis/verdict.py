"""The typed verdict: every metric with its statistic, tolerance, interval and p-values,
and one plain-language summary line."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from core.analysis.engine import Evaluation, MetricRows
from core.analysis.multiplicity import OUTCOMES
from core.spec import AnalysisSpec

Outcome = Literal["pass", "fail", "inconclusive", "info"]
VerdictName = Literal["pass", "fail", "inconclusive"]

_TITLES = {
    "mean_shift": "mean shift",
    "quantile_shift": "quantile shift",
    "agreement": "agreement",
    "error_rate": "error rate",
    "latency_p99": "p99 latency",
    "mean_abs_change": "mean absolute change",
    "ks": "classic KS",
    "psi": "PSI",
    "label_shift": "label shares",
    "latency_p50": "p50 latency",
}


class Metric(BaseModel):
    """One metric. For gating metrics: `p_pass` tests "outside the tolerance" (small: shown
    inside), `p_fail` tests "inside" (small: shown outside) and `p_fail_adjusted` is it after
    Holm's correction over the gating metrics; `interval` has coverage `confidence`."""

    model_config = ConfigDict(frozen=True)

    name: str
    title: str
    family: Literal["equivalence", "shape", "operational", "information"]
    output: str | None = None
    gating: bool
    outcome: Outcome
    statistic: float | None
    unit: str
    threshold: float | None = None
    interval: tuple[float | None, float | None] | None = None
    confidence: float | None = None
    p_pass: float | None = None
    p_fail: float | None = None
    p_fail_adjusted: float | None = None
    p_value: float | None = None
    needed_samples: int | None = None
    values: dict[str, float | None] = {}
    detail: str


class Verdict(BaseModel):
    """The analysis of one capture. `needed_samples` (inconclusive only): total pairs,
    errored ones included, at which to analyse again: where the slowest undecided metric
    should settle at the observed difference (each metric's own estimate is in its
    `needed_samples`), but at most four times `samples`, since estimates from a small sample
    are rough. None when no sample size would settle it: a person should decide."""

    model_config = ConfigDict(frozen=True)

    verdict: VerdictName
    samples: int
    compared: int
    kind: str
    alpha: float  # the allowance for every look at this shadow together
    look: int = 1  # how many times this shadow has been analysed, this time included
    alpha_look: float  # the part of alpha this look spends (3/4 of it at the first)
    correction: Literal["holm"] = "holm"
    metrics: list[Metric]
    summary: str
    needed_samples: int | None
    notes: list[str] = []

    def to_public(self) -> dict[str, Any]:
        """A JSON-ready dict for the deployment's `analysis` field."""
        return self.model_dump(mode="json")

    def metric(self, name: str, output: str | None = None) -> Metric:
        for m in self.metrics:
            if m.name == name and (output is None or m.output == output):
                return m
        raise KeyError(f"no metric {name!r}" + (f" for {output}" if output else ""))


def _num(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return float(f"{v:.6g}") if math.isfinite(v) else None


def _at(a: Any, row: int) -> Any:
    return None if a is None else a[row]


def build_verdict(
    ev: Evaluation, spec: AnalysisSpec, notes: tuple[str, ...], row: int = 0
) -> Verdict:
    confidence = 1 - 2 * ev.alpha
    metrics = [_metric(m, row, confidence, ev.pairs) for m in ev.metrics]
    verdict: VerdictName = OUTCOMES[int(ev.verdict[row])]  # type: ignore[assignment]
    needed = ev.needed[row]
    needed_samples = int(needed) if math.isfinite(needed) else None
    summary = _summary(verdict, metrics, ev, needed_samples)
    return Verdict(
        verdict=verdict, samples=ev.pairs, compared=ev.compared, kind=ev.kind.value,
        alpha=spec.alpha, look=ev.look, alpha_look=ev.alpha, metrics=metrics, summary=summary,
        needed_samples=needed_samples, notes=list(notes),
    )  # fmt: skip


def _metric(m: MetricRows, row: int, confidence: float, pairs: int) -> Metric:
    outcome: Outcome = "info" if m.outcome is None else OUTCOMES[int(m.outcome[row])]  # type: ignore[assignment]
    interval = None
    if m.low is not None and m.high is not None:
        interval = (_num(m.low[row]), _num(m.high[row]))
    needed = None
    if m.needed is not None and m.count is not None and outcome == "inconclusive":
        count = int(m.count[row])
        if count and math.isfinite(m.needed[row]):
            needed = math.ceil(float(m.needed[row]) * pairs / count)
    values = {k: _num(v[row]) for k, v in m.extra.items()}
    metric = Metric(
        name=m.name, title=_TITLES.get(m.name, m.name), family=m.family,
        output=m.output, gating=m.gating, outcome=outcome, statistic=_num(m.estimate[row]),
        unit=m.unit, threshold=m.threshold, interval=interval,
        confidence=confidence if interval else None, p_pass=_num(_at(m.p_pass, row)),
        p_fail=_num(_at(m.p_fail, row)), p_fail_adjusted=_num(_at(m.p_fail_adjusted, row)),
        p_value=_num(_at(m.p_value, row)), needed_samples=needed, values=values, detail="",
    )  # fmt: skip
    return metric.model_copy(update={"detail": describe(metric)})


# ---------------------------------------------------------------- words


def _f(x: float | None, fmt: str, scale: float = 1.0) -> str:
    return "n/a" if x is None else format(x * scale, fmt)


# how each gating metric's value reads: (format of a value, unit words)
_VALUE: dict[str, Callable[[float | None], str]] = {
    "mean_shift": lambda x: f"{_f(x, '+.3f')} SD",
    "quantile_shift": lambda x: f"{_f(x, '.1f', 100)} points",
    "agreement": lambda x: f"{_f(x, '.2f', 100)} %",
    "error_rate": lambda x: f"{_f(x, '+.2f', 100)} points",
    "latency_p99": lambda x: f"x{_f(x, '.2f')}",
}
_ALLOWED: dict[str, Callable[[float], str]] = {
    "mean_shift": lambda t: f"+-{t:g} SD",
    "quantile_shift": lambda t: f"{100 * t:g} points",
    "agreement": lambda t: f">= {100 * t:g} %",
    "error_rate": lambda t: f"+{100 * t:g} points",
    "latency_p99": lambda t: f"x{t:g}",
}
_ALSO_ALLOWED: dict[str, Callable[[dict[str, float | None]], str]] = {
    "latency_p99": lambda v: f" or +{v['slack_ms']:g} ms" if v.get("slack_ms") else "",
}


def _p(x: float | None) -> str:
    if x is None:
        return "p n/a"
    return "p<0.0001" if x < 1e-4 else f"p={x:.2g}"


def short(m: Metric) -> str:
    """A few words for the summary line: the value, and what is allowed."""
    value = _VALUE[m.name]
    v = m.statistic
    if m.name == "quantile_shift":
        size = None if v is None else abs(v)
        bound = m.interval[1] if m.interval else None
        # a pass is shown by the bound, not by the estimate
        text = f"quantile shift {value(size)}" + (
            f" (bound {_f(bound, '.1f', 100)})" if m.outcome != "fail" else ""
        )
    else:
        noun = {
            "mean_shift": "mean shift",
            "agreement": "agreement",
            "error_rate": "error rate vs production",
            "latency_p99": "p99 latency",
        }[m.name]
        text = f"{noun} {value(v)}"
    threshold = "n/a" if m.threshold is None else _ALLOWED[m.name](m.threshold)
    also = _ALSO_ALLOWED.get(m.name)
    text += f", allowed {threshold}{also(m.values) if also else ''}"
    return f"[{m.output}] {text}" if m.output else text


def _judgement(m: Metric) -> str:
    if m.outcome == "pass":
        return f"shown within tolerance ({_p(m.p_pass)})"
    if m.outcome == "fail":
        return f"shown outside tolerance (Holm-adjusted {_p(m.p_fail_adjusted)})"
    text = "not yet shown either way"
    if m.needed_samples:
        text += f"; about {m.needed_samples:,} pairs in all should settle it"
    return text


def _timed(count: float | None) -> str:
    # the mirror times one shadow call a batch: these calls, not the pairs, size the test
    return "" if count is None else f", over {count:,.0f} timed calls"


def describe(m: Metric) -> str:
    """One plain-language line for a metric."""
    vals, prefix = m.values, (f"[{m.output}] " if m.output else "")
    if m.gating:
        parts = [short(m)]
        if m.name == "quantile_shift" and m.statistic and vals.get("level"):
            side = "lower" if m.statistic > 0 else "higher"
            parts.append(f"largest at production's {vals['level']:.0%} quantile (shadow {side})")
        elif m.name == "error_rate":
            shadow, production = vals.get("shadow"), vals.get("production")
            parts.append(
                f"shadow {_f(shadow, '.2f', 100)} %, production {_f(production, '.2f', 100)} %"
            )
        elif m.name == "latency_p99":
            shadow, production = vals.get("shadow_ms"), vals.get("production_ms")
            parts.append(
                f"{_f(shadow, '.2f')} ms vs {_f(production, '.2f')} ms, "
                f"{_f(vals.get('allowed_ms'), '.2f')} ms allowed" + _timed(vals.get("timed"))
            )
        if m.interval and m.confidence:
            lo, hi = m.interval
            if lo is None or hi is None:
                parts.append("too few values to bound it yet")
            else:
                parts.append(
                    f"{m.confidence:.0%} interval {_VALUE[m.name](lo)} to {_VALUE[m.name](hi)}"
                )
        return "; ".join(parts) + f": {_judgement(m)}"
    if m.name == "mean_abs_change":
        return (
            f"{prefix}mean absolute change {_f(m.statistic, '.3f')} SD; outputs identical on "
            f"{_f(vals.get('identical'), '.1f', 100)} % of pairs (information)"
        )
    if m.name == "ks":
        return (
            f"{prefix}classic two-sample KS D={_f(m.statistic, '.4f')}, {_p(m.p_value)} "
            "(unpaired; information)"
        )
    if m.name == "psi":
        alarm = "alarm" if m.statistic is not None and m.statistic > 0.1 else "no alarm"
        return (
            f"{prefix}PSI {_f(m.statistic, '.4f')}; an unchanged distribution stays below "
            f"{_f(vals.get('threshold'), '.4f')} at this size ({_p(m.p_value)}); "
            f"the plain PSI > 0.1 rule: {alarm} (information)"
        )
    if m.name == "label_shift":
        return (
            f"{prefix}largest change of a label's share {_f(m.statistic, '.1f', 100)} points; "
            f"Stuart-Maxwell paired chi-square {_f(vals.get('chi2'), '.2f')}, {_p(m.p_value)} "
            "(information)"
        )
    if m.name == "latency_p50":
        shadow, production = vals.get("shadow_ms"), vals.get("production_ms")
        return (
            f"p50 latency {_f(shadow, '.1f')} ms vs {_f(production, '.1f')} ms "
            f"(x{_f(m.statistic, '.2f')}; information)"
        )
    return f"{prefix}{m.title} {m.statistic}"


def _summary(
    verdict: VerdictName,
    metrics: list[Metric],
    ev: Evaluation,
    needed: int | None,
) -> str:
    gating = [m for m in metrics if m.gating]
    n = ev.pairs
    if verdict == "fail":
        failed = [m for m in gating if m.outcome == "fail"]
        return f"fail after {n:,} pairs: {_listed(failed)}"
    if verdict == "pass":
        head = f"pass: shadow matches production within tolerance on {n:,} pairs"
        if _identical(metrics):
            head += " (outputs identical on every pair)"
        return f"{head}: {_listed(gating)}"
    if ev.compared == 0:
        head = f"inconclusive after {n:,} pairs: no pair where both versions answered"
    else:
        undecided = [m for m in gating if m.outcome == "inconclusive"]
        head = f"inconclusive after {n:,} pairs; not yet settled: {_listed(undecided)}"
    if needed is not None:
        return f"{head}; collect about {needed - n:,} more pairs ({needed:,} in all) and look again"
    return f"{head}; no sample size settles this at the observed difference: a person decides"


def _identical(metrics: list[Metric]) -> bool:
    same = [m.values.get("identical") for m in metrics if m.name == "mean_abs_change"]
    agree = [m.statistic for m in metrics if m.name == "agreement"]
    return bool(same or agree) and all(x == 1.0 for x in same + agree)


def _listed(ms: list[Metric], k: int = 4) -> str:
    text = "; ".join(short(m) for m in ms[:k])
    return text + (f"; and {len(ms) - k} more" if len(ms) > k else "")
