"""Deployment files that used to pass the door and fail later (or never) are refused at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.spec import SpecError, read_deployment_file


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alarms: {p99_latency_ms: .inf}\n", "alarms.p99_latency_ms: Input should be a finite"),
        ("alarms: {error_rate: .nan}\n", "alarms.error_rate: Input should be a finite"),
        ("tolerance: .inf\n", "tolerance: Input should be a finite"),
        ("analysis: {alpha: .nan}\n", "analysis.alpha: Input should be a finite"),
        ("strategy: {kind: blue-green, bake_s: .inf}\n", "strategy.bake_s: Input should be"),
        ("alarms: {min_requests: 1.0e+26}\n", "alarms.min_requests"),
        ("regions: ['../../x']\n", "region '../../x'"),
        ("endpoint: ''\n", "endpoint ''"),
        ("endpoint: a\nendpoint: b\n", "key 'endpoint' is given twice"),
        ("strategy: {kind: shadow, kind: blue-green}\n", "key 'kind' is given twice"),
        ("x: " + "[" * 30 + "]" * 30 + "\n", "nested deeper than 20 levels"),
        ("x: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested"),
    ],
)
def test_refused_with_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "d.yaml"
    f.write_text(text)
    with pytest.raises(SpecError, match=None) as err:
        read_deployment_file(f)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(f))


def test_files_that_are_not_small_utf8_text_are_refused_unread(tmp_path: Path) -> None:
    utf16 = tmp_path / "u16.yaml"
    utf16.write_text("endpoint: churn\n", encoding="utf-16")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * 2_000_000)
    for path, message in [
        (utf16, "not UTF-8 text"),
        (binary, "not UTF-8 text"),
        (huge, "larger than 1024 KiB"),
        (Path("/dev/urandom"), "not a regular file"),
        (tmp_path / "missing.yaml", "no such file"),
        (tmp_path, "not a regular file"),
    ]:
        with pytest.raises(SpecError, match=message):
            read_deployment_file(path)
