"""Shadow equivalence analysis: does the shadow behave like production, or how does it differ?

Pure (numpy/scipy, no I/O) except `render_charts`, the one function that
writes files. Method, defaults and measured error rates: docs/analysis.md.

    sample = PairedSample.from_records(captured_pairs)
    verdict = analyze(sample, spec.analysis)      # pass | fail | inconclusive
    verdict.to_public()                           # the deployment's `analysis` field
"""

from __future__ import annotations

from pathlib import Path

from core.analysis.engine import Batch, evaluate
from core.analysis.model import AnalysisInputError, OutputKind, PairedSample
from core.analysis.report_text import render_text
from core.analysis.verdict import Metric, Verdict, build_verdict
from core.spec import AnalysisSpec


def analyze(pairs: PairedSample, spec: AnalysisSpec | None = None, look: int = 1) -> Verdict:
    """Score one capture of paired predictions against the tolerances of `spec`.

    `look` counts the analyses of the same shadow so far, this one included: when an
    inconclusive shadow collects more pairs and is analysed again, pass 2, 3, ... so the
    chance of a wrong verdict stays within `spec.alpha` over all the looks together."""
    spec = spec or AnalysisSpec()
    return build_verdict(evaluate(Batch.of(pairs), spec, look), spec, pairs.notes)


def render_charts(pairs: PairedSample, verdict: Verdict, folder: Path) -> list[Path]:
    """PNG charts of the comparison in `folder` (created if needed); returns their paths.
    Imports matplotlib only when called."""
    from core.analysis.charts import render

    return render(pairs, verdict, folder)


__all__ = [
    "AnalysisInputError",
    "AnalysisSpec",
    "Metric",
    "OutputKind",
    "PairedSample",
    "Verdict",
    "analyze",
    "render_charts",
    "render_text",
]
