"""PNG charts of a shadow analysis, the one part of the package that writes files.

matplotlib is imported only here and only when `render` runs, and drawn
through its object API with the Agg canvas: no pyplot, no global backend
switch, safe from any thread. Charts:

- numbers: distributions.png (overlaid histograms), differences.png (paired
  differences with the mean-shift tolerance), qq.png (shadow against
  production quantiles), latency.png;
- labels: distributions.png (label shares), confusion.png, latency.png;
- probabilities and vectors: the three numeric charts per output (up to
  six), plus confusion.png of the most likely class for probabilities.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.analysis.model import FloatArray, OutputKind, PairedSample
from core.analysis.verdict import Verdict

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_MAX_PANELS = 6
_PRODUCTION, _SHADOW = "#1f77b4", "#ff7f0e"


def _figure(panels: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    cols = min(panels, 3)
    rows = (panels + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols + 0.6, 3.4 * rows + 0.4), dpi=100, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def _save(fig: Figure, path: Path, title: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.suptitle(title, fontsize=10)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png")
    return path


def _clip_range(*arrays: FloatArray) -> tuple[float, float]:
    both = np.concatenate([a[np.isfinite(a)] for a in arrays])
    if len(both) == 0:
        return 0.0, 1.0
    lo, hi = np.quantile(both, [0.001, 0.999])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return float(lo), float(hi)


Column = tuple[str, str | None, FloatArray, FloatArray]  # axis label, metric output, p, s


def _columns(pairs: PairedSample) -> list[Column]:
    ok = pairs.both_ok
    p, s = pairs.production[ok], pairs.shadow[ok]
    if p.ndim == 1:
        return [("output", None, p, s)]
    k = p.shape[1]
    probs = pairs.kind is OutputKind.PROBABILITIES
    columns = [1] if probs and k == 2 else list(range(k))
    word = "class" if probs else "output"
    label = "P(class {})" if probs else "output {}"
    return [(label.format(c), f"{word} {c}", p[:, c], s[:, c]) for c in columns[:_MAX_PANELS]]


def _scale_of(verdict: Verdict, output: str | None) -> float | None:
    for m in verdict.metrics:
        if m.name == "mean_shift" and m.output == output:
            return m.values.get("scale")
    return None


def _distributions(cols: list[Column], ax_list: list[Axes]) -> None:
    for (name, _output, p, s), ax in zip(cols, ax_list, strict=True):
        lo, hi = _clip_range(p, s)
        bins = np.linspace(lo, hi, 50).tolist()
        ax.hist(
            p, bins=bins, histtype="stepfilled", alpha=0.35, color=_PRODUCTION, label="production"
        )
        ax.hist(s, bins=bins, histtype="step", linewidth=1.6, color=_SHADOW, label="shadow")
        ax.set_xlabel(name)
        ax.set_ylabel("pairs")
        ax.legend(fontsize=8)


def _differences(cols: list[Column], ax_list: list[Axes], verdict: Verdict, sd: float) -> None:
    for (name, output, p, s), ax in zip(cols, ax_list, strict=True):
        d = s - p
        lo, hi = _clip_range(d)
        bound = max(abs(lo), abs(hi), 1e-12)
        ax.hist(d, bins=np.linspace(-bound, bound, 51).tolist(), color="#555555")
        scale = _scale_of(verdict, output)
        if scale:
            for x in (-sd * scale, sd * scale):
                ax.axvline(x, color="#d62728", linestyle="--", linewidth=1)
        ax.axvline(float(np.mean(d)) if len(d) else 0.0, color=_SHADOW, linewidth=1.5)
        ax.set_xlabel(f"shadow - production ({name}); dashed: mean-shift tolerance")
        ax.set_ylabel("pairs")


def _qq(cols: list[Column], ax_list: list[Axes]) -> None:
    levels = np.linspace(0.005, 0.995, 199)
    for (name, _output, p, s), ax in zip(cols, ax_list, strict=True):
        if len(p) == 0:
            continue
        qp, qs = np.quantile(p, levels), np.quantile(s, levels)
        ax.plot(qp, qs, ".", markersize=3, color=_SHADOW)
        lo, hi = float(min(qp[0], qs[0])), float(max(qp[-1], qs[-1]))
        ax.plot([lo, hi], [lo, hi], color="#888888", linewidth=1)
        ax.set_xlabel(f"production quantiles ({name})")
        ax.set_ylabel("shadow quantiles")


def _confusion(pairs: PairedSample, ax: Axes) -> None:
    p, s, names = pairs.class_codes()
    k = len(names)
    table = np.bincount(p * k + s, minlength=k * k).reshape(k, k).astype(float)
    rows = table.sum(axis=1, keepdims=True)
    share = np.divide(table, rows, out=np.zeros_like(table), where=rows > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.figure.colorbar(image, ax=ax, label="share of production's label")
    if k <= 20:
        ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        for i in range(k):
            for j in range(k):
                if table[i, j]:
                    color = "white" if share[i, j] > 0.5 else "black"
                    ax.text(j, i, f"{int(table[i, j])}", ha="center", va="center", fontsize=7,
                            color=color)  # fmt: skip
    ax.set_xlabel("shadow")
    ax.set_ylabel("production")


def _label_shares(pairs: PairedSample, ax: Axes) -> None:
    ok = pairs.both_ok
    p, s = pairs.production[ok], pairs.shadow[ok]
    names = [str(x) for x in pairs.labels]
    k = len(names)
    n = max(len(p), 1)
    cp, cs = np.bincount(p, minlength=k) / n, np.bincount(s, minlength=k) / n
    x = np.arange(k)
    ax.bar(x - 0.2, cp, width=0.4, color=_PRODUCTION, label="production")
    ax.bar(x + 0.2, cs, width=0.4, color=_SHADOW, label="shadow")
    if k <= 30:
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of pairs")
    ax.legend(fontsize=8)


def _latency(pairs: PairedSample, ax: Axes) -> bool:
    if pairs.production_ms is None or pairs.shadow_ms is None:
        return False
    p = pairs.production_ms[~pairs.production_error]
    s = pairs.shadow_ms[~pairs.shadow_error]
    p, s = p[np.isfinite(p)], s[np.isfinite(s)]
    if len(p) == 0 or len(s) == 0:
        return False
    for values, color, name in ((p, _PRODUCTION, "production"), (s, _SHADOW, "shadow")):
        x = np.sort(values)
        ax.plot(x, np.arange(1, len(x) + 1) / len(x), color=color, label=name)
        p99 = float(np.quantile(values, 0.99, method="inverted_cdf"))
        ax.axvline(p99, color=color, linestyle="--", linewidth=1)
    if float(min(p.min(), s.min())) > 0:
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.set_xscale("log")  # latency is skewed: a log axis shows the body and the tail
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axhline(0.99, color="#888888", linewidth=0.8)
    ax.set_xlabel("latency, ms (dashed: p99)")
    ax.set_ylabel("share of calls at or below")
    ax.legend(fontsize=8)
    return True


def render(pairs: PairedSample, verdict: Verdict, folder: Path) -> list[Path]:
    """Write the charts into `folder` (created if needed); returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    title = f"shadow analysis: {verdict.verdict} ({verdict.samples:,} pairs)"
    written: list[Path] = []
    spec_sd = _mean_shift_tolerance(verdict)
    if pairs.kind is OutputKind.LABELS:
        fig, (ax,) = _figure()
        _label_shares(pairs, ax)
        written.append(_save(fig, folder / "distributions.png", title))
    else:
        cols = _columns(pairs)
        fig, axes = _figure(len(cols))
        _distributions(cols, axes)
        written.append(_save(fig, folder / "distributions.png", title))
        fig, axes = _figure(len(cols))
        _differences(cols, axes, verdict, spec_sd)
        written.append(_save(fig, folder / "differences.png", title))
        fig, axes = _figure(len(cols))
        _qq(cols, axes)
        written.append(_save(fig, folder / "qq.png", title))
    if pairs.kind in (OutputKind.LABELS, OutputKind.PROBABILITIES):
        fig, (ax,) = _figure()
        _confusion(pairs, ax)
        written.append(_save(fig, folder / "confusion.png", title))
    fig, (ax,) = _figure()
    if _latency(pairs, ax):
        written.append(_save(fig, folder / "latency.png", title))
    return written


def _mean_shift_tolerance(verdict: Verdict) -> float:
    for m in verdict.metrics:
        if m.name == "mean_shift" and m.threshold is not None:
            return m.threshold
    return 0.0
