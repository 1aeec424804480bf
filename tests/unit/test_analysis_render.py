"""The text form (sparklines) and the PNG charts of an analysis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from core.analysis import PairedSample, analyze, render_charts, render_text, simulate
from core.analysis.report_text import bar, sparkline

PNG = b"\x89PNG\r\n\x1a\n"


def numbers_sample(shift: float = 0.0) -> PairedSample:
    rng = np.random.default_rng(1)
    p, s = simulate.numbers(rng, 1, 2000, shift)
    ms = simulate.latencies(rng, 2, 2000)
    return PairedSample.from_arrays(p[0], s[0], ms[0], ms[1])


def test_sparkline_draws_a_histogram_in_block_characters() -> None:
    line = sparkline(np.array([0.0, 0.0, 0.0, 1.0]), 0.0, 1.0, width=4)
    assert line == "█  ▃"
    assert sparkline(np.array([]), 0.0, 1.0, width=5) == "     "
    assert len(sparkline(np.full(10, 3.0), 3.0, 3.0, width=8)) == 8  # a point range still draws
    assert bar(0.5, width=4) == "██  "
    assert bar(1.0, width=4) == "████"


def test_text_of_a_regression_shows_distributions_and_every_metric() -> None:
    sample = numbers_sample()
    v = analyze(sample)
    text = render_text(sample, v)
    lines = text.splitlines()
    assert lines[0].startswith(f"{v.verdict.upper()}  shadow analysis of 2,000 pairs")
    assert lines[1].startswith("production ") and lines[2].startswith("shadow ")
    assert lines[3].startswith("difference ")
    assert any(line.startswith("latency production") for line in lines)
    for m in v.metrics:
        assert m.detail in text
    assert lines[-1] == v.summary
    assert set("▁▂▃▄▅▆▇█") & set(lines[1])


def test_compact_text_keeps_what_did_not_pass() -> None:
    sample = numbers_sample(shift=0.3)
    v = analyze(sample)
    text = render_text(sample, v, compact=True)
    assert "✗ mean shift" in text
    assert "classic two-sample KS" not in text
    assert "✓" not in text


def test_text_of_labels_shows_shares_side_by_side() -> None:
    labels = ["cat"] * 600 + ["dog"] * 400
    shadow = ["cat"] * 590 + ["dog"] * 410
    sample = PairedSample.from_arrays(labels, shadow)
    text = render_text(sample, analyze(sample))
    assert "cat" in text and "60.0%" in text and "59.0%" in text
    assert "labels differ on 10 of 1,000 compared pairs" in text


def test_charts_of_a_regression(tmp_path: Path) -> None:
    sample = numbers_sample()
    out = tmp_path / "report"
    paths = render_charts(sample, analyze(sample), out)
    assert [p.name for p in paths] == [
        "distributions.png",
        "differences.png",
        "qq.png",
        "latency.png",
    ]
    assert sorted(out.iterdir()) == sorted(paths)
    for p in paths:
        assert p.read_bytes().startswith(PNG) and p.stat().st_size > 5000


def test_charts_of_labels_and_of_probabilities(tmp_path: Path) -> None:
    labels = PairedSample.from_arrays(["a", "b", "a", "c"] * 50, ["a", "b", "b", "c"] * 50)
    names = [p.name for p in render_charts(labels, analyze(labels), tmp_path / "labels")]
    assert names == ["distributions.png", "confusion.png"]  # no latencies given: no latency chart
    rng = np.random.default_rng(2)
    p, s = simulate.probabilities(rng, 1, 500)
    probs = PairedSample.from_arrays(p[0], s[0])
    names = [p.name for p in render_charts(probs, analyze(probs), tmp_path / "probs")]
    assert names == ["distributions.png", "differences.png", "qq.png", "confusion.png"]


def test_importing_the_analysis_does_not_import_matplotlib() -> None:
    code = "import sys, core.analysis; sys.exit('matplotlib' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
