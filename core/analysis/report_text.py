"""The analysis as a few lines of text: sparklines and bars in characters, for a terminal,
a dashboard cell or a Slack message (wrap it in a code block there)."""

from __future__ import annotations

import numpy as np

from core.analysis.model import FloatArray, OutputKind, PairedSample
from core.analysis.verdict import Metric, Verdict

_BLOCKS = "▁▂▃▄▅▆▇█"
_MARKS = {"pass": "✓", "fail": "✗", "inconclusive": "?", "info": "·"}
_MAX_COLUMNS = 4  # vectors: sparklines of the first few outputs only
_MAX_CLASSES = 12


def sparkline(values: FloatArray, lo: float, hi: float, width: int = 24) -> str:
    """A histogram of `values` over [lo, hi] as `width` block characters; blank: empty bin."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return " " * width
    if hi <= lo:
        hi = lo + 1.0
    counts, _ = np.histogram(np.clip(values, lo, hi), bins=width, range=(lo, hi))
    top = counts.max()
    return "".join(
        " " if c == 0 else _BLOCKS[min(len(_BLOCKS) - 1, int(c / top * (len(_BLOCKS) - 1) + 0.5))]
        for c in counts
    )


def bar(share: float, width: int = 12) -> str:
    """A share in [0, 1] as a horizontal bar of eighth-blocks."""
    eighths = round(max(0.0, min(1.0, share)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[rest] if rest else "")).ljust(width)


def _range(*arrays: FloatArray) -> tuple[float, float]:
    both = np.concatenate([a[np.isfinite(a)] for a in arrays])
    if len(both) == 0:
        return 0.0, 1.0
    lo, hi = np.quantile(both, [0.005, 0.995])
    return float(lo), float(hi)


def _pair_lines(label: str, p: FloatArray, s: FloatArray, width: int) -> list[str]:
    lo, hi = _range(p, s)
    head = f"{label} " if label else ""
    pad = " " * len(head)
    return [
        f"{head}production {sparkline(p, lo, hi, width)}  {lo:.4g} .. {hi:.4g}",
        f"{pad}shadow     {sparkline(s, lo, hi, width)}",
    ]


def _difference_line(label: str, d: FloatArray, width: int) -> str:
    head = f"{label} " if label else ""
    if len(d) == 0:
        return f"{head}difference (no pair to compare)"
    if np.all(d == 0):
        return f"{head}difference {'█'.center(width)}  all 0"
    lo, hi = _range(d)
    bound = max(abs(lo), abs(hi))
    return f"{head}difference {sparkline(d, -bound, bound, width)}  {-bound:.3g} .. {bound:.3g}"


def _numbers(pairs: PairedSample, width: int) -> list[str]:
    ok = pairs.both_ok
    p, s = pairs.production[ok], pairs.shadow[ok]
    if p.ndim == 1:
        return [*_pair_lines("", p, s, width), _difference_line("", s - p, width)]
    lines: list[str] = []
    k = p.shape[1]
    columns = [1] if pairs.kind is OutputKind.PROBABILITIES and k == 2 else list(range(k))
    word = "class" if pairs.kind is OutputKind.PROBABILITIES else "output"
    for c in columns[:_MAX_COLUMNS]:
        label = f"{word} {c}"
        lines += _pair_lines(label, p[:, c], s[:, c], width)
        lines.append(_difference_line(" " * len(label), s[:, c] - p[:, c], width))
    if len(columns) > _MAX_COLUMNS:
        lines.append(f"(and {len(columns) - _MAX_COLUMNS} more {word}es)")
    return lines


def _labels(pairs: PairedSample) -> list[str]:
    p, s, names = pairs.class_codes()
    n = max(len(p), 1)
    classes = len(names)
    cp = np.bincount(p, minlength=classes) / n if len(p) else np.zeros(classes)
    cs = np.bincount(s, minlength=classes) / n if len(s) else np.zeros(classes)
    order = np.argsort(-(cp + cs), kind="stable")[:_MAX_CLASSES]
    w = max([len(names[i]) for i in order] + [5])
    lines = [f"{'label'.ljust(w)}  {'production'.ljust(19)}  shadow"]
    for i in order:
        lines.append(
            f"{names[i][:w].ljust(w)}  {bar(cp[i])} {cp[i]:6.1%}  {bar(cs[i])} {cs[i]:6.1%}"
        )
    if classes > _MAX_CLASSES:
        lines.append(f"(and {classes - _MAX_CLASSES} more labels)")
    differ = int(np.sum(p != s))
    lines.append(f"labels differ on {differ:,} of {len(p):,} compared pairs")
    return lines


def _latency(pairs: PairedSample, width: int) -> list[str]:
    if pairs.production_ms is None or pairs.shadow_ms is None:
        return []
    p = pairs.production_ms[~pairs.production_error]
    s = pairs.shadow_ms[~pairs.shadow_error]
    p, s = p[np.isfinite(p)], s[np.isfinite(s)]
    if len(p) == 0 or len(s) == 0:
        return []
    # latency is skewed: bins on a log scale show the body and the tail together
    lp, ls = np.log10(np.maximum(p, 1e-3)), np.log10(np.maximum(s, 1e-3))
    lo, hi = _range(lp, ls)

    def q(x: FloatArray) -> float:
        return float(np.quantile(x, 0.99, method="inverted_cdf"))

    return [
        f"latency production {sparkline(lp, lo, hi, width)}  p99 {q(p):.1f} ms (log scale)",
        f"        shadow     {sparkline(ls, lo, hi, width)}  p99 {q(s):.1f} ms",
    ]


def _metric_line(m: Metric) -> str:
    return f"{_MARKS[m.outcome]} {m.detail}"


def render_text(
    pairs: PairedSample, verdict: Verdict, width: int = 24, compact: bool = False
) -> str:
    """The verdict, the distributions as sparklines and one line per metric; `compact`
    keeps only the gating metrics that did not pass, for a chat message."""
    look = f"look {verdict.look}, " if verdict.look > 1 else ""
    head = (
        f"{verdict.verdict.upper()}  shadow analysis of {verdict.samples:,} pairs "
        f"({verdict.compared:,} compared; {look}alpha {verdict.alpha_look:.3g} of "
        f"{verdict.alpha:g}, Holm)"
    )
    lines = [head]
    if pairs.kind in (OutputKind.LABELS, OutputKind.PROBABILITIES):
        lines += _labels(pairs)
    if pairs.kind is not OutputKind.LABELS:
        lines += _numbers(pairs, width)
    lines += _latency(pairs, width)
    gating = [m for m in verdict.metrics if m.gating]
    if compact:
        lines += [_metric_line(m) for m in gating if m.outcome != "pass"]
    else:
        lines += [_metric_line(m) for m in gating]
        lines += [_metric_line(m) for m in verdict.metrics if not m.gating]
        lines += [f"note: {n}" for n in verdict.notes]
    lines.append(verdict.summary)
    return "\n".join(line.rstrip() for line in lines)
