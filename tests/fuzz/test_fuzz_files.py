"""The files mmm reads, through the readers the command uses: deployment files (as mappings,
`parse_deployment`, and as bytes on disk, `read_deployment_file`), settings files
(`$MMM_HOME/mmm.yaml`, `load_workspace`) and golden data (`read_golden`).

Each is accepted, and then valid by README's rules ("The deployment file", "Settings",
"Names, and what is refused at the door"), or refused with one line naming the file.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.bootstrap import SETTINGS_FILE, WorkspaceError, load_workspace
from core.ports import InvalidInput
from core.runtime.golden import GoldenCase, read_golden
from core.spec import DeploymentSpec, Settings, SpecError, parse_deployment, read_deployment_file
from tests.fuzz import hostile
from tests.fuzz.support import fast_and_slow, one_line, ran

# ---------------------------------------------------------------- README's rules, again

_ENDPOINT = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")  # lowercase letters, digits, single dashes
_REGION = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")  # "a name like us-east-1"
_SECRET_WORDS = ("SECRET", "PASSWORD", "PASSWD", "API_KEY", "PRIVATE_KEY", "CREDENTIAL")
_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
MAX_BYTES = 1024 * 1024
MAX_DEPTH = 20


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _numbers(v)


def _depth(value: Any, seen: dict[int, int] | None = None) -> int:
    """Nesting of a loaded document (shared parts counted where they hang)."""
    seen = {} if seen is None else seen
    if not isinstance(value, dict | list):
        return 0
    if id(value) in seen:
        return seen[id(value)]
    seen[id(value)] = MAX_DEPTH + 1  # a cycle is deeper than any limit
    children = value.values() if isinstance(value, dict) else value
    depth = 1 + max((_depth(c, seen) for c in children), default=0)
    seen[id(value)] = depth
    return depth


def assert_documented_deployment(doc: dict[Any, Any], spec: DeploymentSpec) -> None:
    """An accepted deployment file holds only documented keys and valid values."""
    assert all(k in hostile.DEPLOYMENT_KEYS for k in doc), sorted(map(str, doc))
    if spec.endpoint is not None:
        assert _ENDPOINT.match(spec.endpoint) and len(spec.endpoint) <= 63, spec.endpoint
    assert spec.regions and len(set(spec.regions)) == len(spec.regions)
    for region in spec.regions:
        assert _REGION.match(region) and len(region) <= 32, region
    assert {g.value for g in spec.gates} <= set(hostile.GATES)
    assert spec.strategy.kind.value in hostile.STRATEGY_KINDS
    steps = getattr(spec.strategy, "steps", None)
    if steps is not None:
        assert steps[-1] == 100 and all(0 < s <= 100 for s in steps)
        assert all(a < b for a, b in itertools.pairwise(steps))
    dumped = spec.model_dump(mode="json")
    assert all(math.isfinite(x) for x in _numbers(dumped)), dumped
    for key, value in spec.env.items():
        if any(word in key.upper() for word in _SECRET_WORDS):
            assert _REFERENCE.match(value), (key, value)
    # What is accepted is saved with the deployment and read back by every later look.
    back = DeploymentSpec.model_validate_json(spec.model_dump_json())
    assert back == spec, {
        k: (getattr(spec, k), getattr(back, k))
        for k in DeploymentSpec.model_fields
        if getattr(spec, k) != getattr(back, k)
    }


def assert_documented_settings(data: dict[Any, Any], settings: Settings) -> None:
    assert all(k in hostile.SETTINGS_KEYS for k in data), sorted(map(str, data))
    defaults = data.get("defaults") or {}
    assert_documented_deployment(defaults, parse_deployment(defaults))
    dumped = settings.model_dump(mode="json")
    assert all(math.isfinite(x) for x in _numbers(dumped)), dumped
    assert Settings.model_validate_json(settings.model_dump_json()) == settings


def assert_refused_file(exc: Exception, source: str) -> str:
    line = one_line(str(exc), "the error")
    assert line.startswith(source), (source, line[:300])
    return line


# ---------------------------------------------------------------- deployment files


def check_deployment_mapping(doc: dict[Any, Any]) -> None:
    try:
        spec = parse_deployment(doc)
    except SpecError as exc:
        assert_refused_file(exc, "deployment: ")
        ran("deployment mapping (parse_deployment)", False)
        return
    assert_documented_deployment(doc, spec)
    ran("deployment mapping (parse_deployment)", True)


test_deployment_mapping, test_deployment_mapping_slow = fast_and_slow(
    check_deployment_mapping, 100, 1000, doc=hostile.deployment_docs()
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-files")


def _write(folder: Path, name: str, data: bytes) -> Path:
    handle, raw = tempfile.mkstemp(prefix=name, suffix=".yaml", dir=folder)
    with open(handle, "wb") as f:
        f.write(data)
    return Path(raw)


def check_deployment_file(folder: Path, data: bytes) -> None:
    path = _write(folder, "deploy-", data)
    try:
        try:
            doc = read_deployment_file(path)
        except SpecError as exc:
            assert_refused_file(exc, str(path))
            ran("deployment file (read_deployment_file)", False)
            return
        # accepted: UTF-8 text of at most 1 MiB without NUL, no deeper than 20 levels,
        # that YAML's own safe reader reads alike (no key given twice)
        assert_documented_deployment(doc, parse_deployment(doc))
        assert len(data) <= MAX_BYTES
        text = data.decode("utf-8")
        assert "\x00" not in text
        assert _depth(doc) <= MAX_DEPTH
        assert yaml.safe_load(text) in (doc, None)
        ran("deployment file (read_deployment_file)", True)
    finally:
        path.unlink()


test_deployment_file, test_deployment_file_slow = fast_and_slow(
    check_deployment_file, 70, 300, data=hostile.file_bytes(hostile.yaml_texts(surrogates=True))
)


# ---------------------------------------------------------------- settings files


def check_settings_file(folder: Path, data: bytes) -> None:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=folder))
    path = home / SETTINGS_FILE
    path.write_bytes(data)
    try:
        ws = load_workspace(home)
    except (SpecError, WorkspaceError) as exc:
        assert_refused_file(exc, str(path))
        ran("settings file (load_workspace)", False)
        return
    finally:
        assert sorted(p.name for p in home.iterdir()) == [SETTINGS_FILE]  # reading writes nothing
        path.unlink()
        home.rmdir()
    loaded = yaml.safe_load(data.decode("utf-8")) or {}
    assert_documented_settings(loaded, ws.settings)
    assert len(data) <= MAX_BYTES and "\x00" not in data.decode("utf-8")
    assert _depth(loaded) <= MAX_DEPTH
    ran("settings file (load_workspace)", True)


test_settings_file, test_settings_file_slow = fast_and_slow(
    check_settings_file, 60, 300, data=hostile.file_bytes(hostile.settings_texts(surrogates=True))
)


# ---------------------------------------------------------------- golden data

_JSON_SPACE = " \t\r\n"  # the only whitespace JSON knows


def _finite(text: str) -> float:
    value = float(text)
    assert math.isfinite(value)
    return value


def _expected_cases(text: str) -> list[GoldenCase]:
    """README: JSON Lines, one case a line: {"input": [feature, ...] or {"name": value},
    "output": expected}; blank lines skipped; no NaN or Infinity."""

    def no_constant(name: str) -> Any:
        raise AssertionError(f"{name} accepted")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        assert len({k for k, _ in pairs}) == len(pairs), "a key given twice was accepted"
        return dict(pairs)

    cases = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip(_JSON_SPACE):
            continue
        case = json.loads(
            line, parse_constant=no_constant, parse_float=_finite, object_pairs_hook=unique
        )
        assert isinstance(case, dict) and sorted(case) == ["input", "output"], case
        features = case["input"]
        assert isinstance(features, list | dict) and features, features
        for value in features.values() if isinstance(features, dict) else features:
            assert value is None or isinstance(value, bool | int | float | str), value
        cases.append(GoldenCase(line=number, input=features, output=case["output"]))
    assert cases
    return cases


def _standalone_reader(path: Path) -> list[tuple[int, Any]]:
    """How the self-contained golden test mmm writes for GitHub reads the file
    (core/codegen/templates/test_golden_standalone.py.j2)."""
    lines = path.read_bytes().decode("utf-8-sig").split("\n")
    return [(n, json.loads(text)) for n, text in enumerate(lines, start=1) if text.strip()]


def check_golden_file(folder: Path, data: bytes) -> None:
    path = _write(folder, "golden-", data)
    try:
        try:
            cases = read_golden(path)
        except InvalidInput as exc:
            line = assert_refused_file(exc, str(path))
            assert re.search(r": (line \d+: |no golden cases|cannot read)", line), line
            ran("golden file (read_golden)", False)
            return
        text = data.decode("utf-8-sig")
        assert cases == _expected_cases(text)
        assert [(c.line, {"input": c.input, "output": c.output}) for c in cases] == (
            _standalone_reader(path)
        )
        ran("golden file (read_golden)", True)
    finally:
        path.unlink()


test_golden_file, test_golden_file_slow = fast_and_slow(
    check_golden_file, 100, 1000, data=hostile.file_bytes(hostile.golden_texts(surrogates=True))
)


_CASE = b'{"input": [1], "output": 1}'
_UNREADABLE = {
    # padding str.strip() takes and json.loads refuses: the golden test mmm writes for
    # GitHub reads each line with json.loads, so mmm refuses it at register
    **{f"padded with {pad!r}": pad.encode() + _CASE for pad in ("\u00a0", "\u0085", "\u2028",
                                                                 "\u3000", "\x1c")},
    # beyond Python's int conversion limit (4300 digits) and its recursion limit
    "a 5,000-digit integer": b'{"input": [1], "output": ' + b"1" * 5000 + b"}",
    "nested 3,000 deep": b'{"input": [1], "output": ' + b"[" * 3000 + b"]" * 3000 + b"}",
}  # fmt: skip


@pytest.mark.parametrize("line", _UNREADABLE.values(), ids=_UNREADABLE.keys())
def test_a_golden_line_json_loads_cannot_read_is_refused_naming_it(
    folder: Path, line: bytes
) -> None:
    """Found by fuzzing: each was accepted (padding), or escaped as ValueError or
    RecursionError, not a refusal naming the line."""
    path = _write(folder, "golden-bad-", _CASE + b"\n" + line + b"\n")
    try:
        with pytest.raises(InvalidInput, match=r": line 2: "):
            read_golden(path)
    finally:
        path.unlink()


def test_the_strategies_reach_both_outcomes() -> None:
    """The generators are not all refusals: a plain valid example of each file passes."""
    parse_deployment(yaml.safe_load("endpoint: churn-scorer\ngates: [before_rollout]\n"))
    with tempfile.TemporaryDirectory() as tmp:
        golden = Path(tmp) / "g.jsonl"
        golden.write_text('{"input": [1, 2], "output": 3}\n')
        assert len(read_golden(golden)) == 1
