"""The architecture's rules: core/ is headless, the CLI starts without heavy imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FRONT_ENDS = {"textual", "slack_bolt", "slack_sdk", "mmm_tui", "mmm_bot", "mmm_cli", "click"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_a_front_end() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_modules(p) & FRONT_ENDS)
        for p in (ROOT / "core").rglob("*.py")
        if imported_modules(p) & FRONT_ENDS
    }
    assert offenders == {}


def test_cli_starts_without_model_libraries() -> None:
    code = (
        "import sys, mmm_cli.main;"
        "heavy = {'sklearn', 'xgboost', 'onnxruntime', 'textual', 'slack_bolt', 'comet_ml', 'boto3', 'scipy'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
