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


def _top_level_core_imports(path: Path) -> set[str]:
    """Modules of core/ that `path` depends on: imports at module level, for type checking
    too, but not inside functions (the composition root builds what it needs there);
    `from core.pkg import mod` names `core.pkg.mod` too."""
    names: set[str] = set()
    body = ast.parse(path.read_text()).body
    for node in [*body, *(n for b in body if isinstance(b, ast.If) for n in b.body)]:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("core.")}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.startswith("core.")
        ):
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_core_modules_import_each_other_in_one_direction() -> None:
    modules = {}
    for p in (ROOT / "core").rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = _top_level_core_imports(p)
    for name, deps in modules.items():  # `from core.pkg import mod`: the module, not the package
        submodules = {d for d in deps if d in modules and d.rpartition(".")[0] in deps}
        modules[name] = {d for d in deps if d in modules} - {
            d.rpartition(".")[0] for d in submodules
        }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(modules.get(name, ())):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(modules):
        if name not in state:
            visit(name, [name])
    assert cycles == []
