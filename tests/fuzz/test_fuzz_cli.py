"""The `mmm` command with hostile arguments and files, on a real embedded workspace (one per
module; put back as it was after every example that changed it).

Every call either succeeds (exit 0, and what it recorded is valid by README's rules) or is
refused with one line on stderr starting `mmm: error:`, exit 1, 2 or 3, no traceback and
no "run with --debug" (an error nobody planned for); a refusal changes nothing in the
workspace, and no call writes anything outside it (the sandbox around it, its working
folder, its temporary folder and its HOME are compared before and after).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import strategies as st

from core.bootstrap import SETTINGS_FILE, WorkspaceError, load_workspace
from core.domain import Library
from core.spec import Backends, SpecError
from tests.fuzz import hostile
from tests.fuzz.support import (
    Result,
    changed_outside,
    fast_and_slow,
    ran,
    run_cli,
    tree,
    workspace_state,
)
from tests.support.models import train_sklearn_regressor, write_golden

# README: "Names, and what is refused at the door"
_MODEL = re.compile(r"^[A-Za-z0-9]+([-_][A-Za-z0-9]+)*$")
_ENDPOINT = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_REGION = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_VERSION = re.compile(r"^[A-Za-z0-9]+([.+-][A-Za-z0-9]+)*$")
_LIBRARIES = {"sklearn", "xgboost", "onnx", "huggingface", "pytorch"}
HELD = "held-endpoint"  # a queued deployment holds it in the pristine workspace


@dataclass
class Sandbox:
    root: Path  # everything the command may see; only `home` may change
    home: Path
    pristine: Path
    inputs: Path
    artifact: Path
    golden: Path
    queued: str  # a deployment queued on HELD
    counter: Iterator[int]

    def env(self, user: str | None = None) -> dict[str, str]:
        env = {"MMM_HOME": str(self.home), "HOME": str(self.root / "userhome")}
        if user is not None:
            env["MMM_USER"] = user
        return env

    def run(self, args: list[str], user: str | None = "alice") -> Result:
        return run_cli(args, self.env(user), self.root)

    def restore(self) -> None:
        shutil.rmtree(self.home)
        shutil.copytree(self.pristine, self.home, symlinks=True)

    def write(self, data: bytes, suffix: str) -> Path:
        path = self.inputs / f"input-{next(self.counter)}{suffix}"
        path.write_bytes(data)
        return path


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    root = tmp_path_factory.mktemp("fuzz-cli")
    (root / "userhome").mkdir()
    inputs = root / "inputs"
    artifact = train_sklearn_regressor(inputs)
    golden = write_golden(artifact, Library.SKLEARN, inputs)
    box = Sandbox(
        root, root / "ws", root / "pristine", inputs, artifact, golden, "", itertools.count()
    )
    for args in (
        ["init"],
        ["register", "churn", "--artifact", str(artifact), "--library", "sklearn",
         "--golden", str(golden), "--owner", "risk"],
    ):  # fmt: skip
        res = box.run(args)
        assert res.code == 0, res.err
    res = box.run(["deploy", "churn", "1", "--endpoint", HELD, "--detach", "--json"])
    assert res.code == 0, res.err
    box.queued = json.loads(res.out)["id"]
    shutil.copytree(box.home, box.pristine, symlinks=True, ignore=shutil.ignore_patterns("tmp"))
    box.restore()
    return box


# ---------------------------------------------------------------- arguments


def argv_text(text: str) -> str:
    """`text` as it could reach a program's argv: no NUL (C strings end there), and bytes
    that are not UTF-8 as Python shows them (lone surrogates U+DC80..U+DCFF)."""
    raw = text.replace("\x00", "").encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "surrogateescape")


def arg(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return strategy.map(argv_text)


MODELS = arg(st.one_of(st.just("churn"), hostile.names(hostile.MODEL_RE, surrogates=True)))
VERSIONS = arg(
    st.one_of(st.sampled_from(["1", "2", "01", "1.0"]), hostile.names(hostile.VERSION_RE))
)
ENDPOINTS = arg(st.one_of(st.just(HELD), hostile.names(hostile.ENDPOINT_RE, surrogates=True)))
REGIONS = arg(st.one_of(st.just("local"), hostile.names(hostile.REGION_RE, surrogates=True)))
STRATEGIES = arg(st.one_of(st.sampled_from(hostile.STRATEGY_KINDS), hostile.hostile_text()))
USERS = arg(st.one_of(st.sampled_from(["alice", "bob"]), hostile.names(r"[a-z]{1,8}", True)))
TEXTS = arg(hostile.hostile_text(surrogates=True))
NUMBERS = st.one_of(
    st.sampled_from(["0", "-1", "0.5", "nan", "inf", "-inf", "1e309", "1e-400", "", "x"]),
    st.integers().map(str),
    st.floats().map(str),
)
JUNK = arg(
    st.sampled_from(
        ["--frobnicate", "-x", "--", "--json=1", "--as", "--home", "-f", "---", "--help", "-"]
    )
)


@st.composite
def refs(draw: st.DrawFn) -> str:
    """Deployment ids: the queued one, a prefix of it, near it, or anything."""
    return draw(
        st.one_of(
            st.just("QUEUED"),
            st.sampled_from(["QUEUED[:4]", "QUEUED[:8]", "dep-", "ret-", "dep-000000-000000"]),
            st.builds(lambda t: "QUEUED" + t, TEXTS),
            TEXTS,
        )
    )


@st.composite
def paths(draw: st.DrawFn, kind: str) -> str:
    """A path argument: the real file, a fuzzed one (written by the test), somewhere odd."""
    return draw(
        st.one_of(
            st.sampled_from([f"REAL-{kind}", f"FUZZED-{kind}", f"FUZZED-{kind}"]),
            st.sampled_from(["/etc/passwd", "/dev/null", "/nonexistent/x", "/", ".", "..",
                             "../ws/mmm.yaml", "../ws/state.db", "../inputs", "~/x"]),
            TEXTS,
        )
    )  # fmt: skip


def opt(draw: st.DrawFn, name: str, value: st.SearchStrategy[str] | None = None) -> list[str]:
    if not draw(st.booleans()):
        return []
    return [name] if value is None else [name, draw(value)]


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, list[str]]:
    """One `mmm` command line, with placeholders the test fills (QUEUED, REAL-*, FUZZED-*)."""
    command = draw(
        st.sampled_from(
            ["deploy", "deploy", "deploy", "register", "status", "approve", "abort", "retire",
             "usage", "audit", "models", "schema", "rollback", "invoke", "nonsense"]
        )
    )  # fmt: skip
    args: list[str]
    if command == "deploy":
        args = ["deploy", draw(MODELS), draw(VERSIONS)]
        args += opt(draw, "--endpoint", ENDPOINTS)
        args += opt(draw, "--strategy", STRATEGIES)
        for region in draw(st.lists(REGIONS, max_size=3)):
            args += ["--region", region]
        args += opt(draw, "-f", paths("deployment"))
        args += [draw(st.sampled_from(["--dry-run", "--detach"]))]
    elif command == "register":
        artifact = st.one_of(st.just("REAL-artifact"), paths("artifact"))
        args = ["register", draw(MODELS), "--artifact", draw(artifact)]
        library = st.one_of(st.just("sklearn"), st.sampled_from(sorted(_LIBRARIES)), TEXTS)
        args += ["--library", draw(library)]
        args += opt(draw, "--golden", st.one_of(st.just("REAL-golden"), paths("golden")))
        args += opt(draw, "--owner", TEXTS)
    elif command == "status":
        # --wait on an active deployment would run it here (no worker is alive): only with
        # ids of no deployment
        wait = opt(draw, "--wait")
        args = ["status", *wait, *opt(draw, "--timeout", NUMBERS)]
        if draw(st.booleans()):
            args += [draw(TEXTS.filter(lambda t: "dep" not in t) if wait else refs())]
    elif command == "approve":
        args = ["approve", draw(refs()), *opt(draw, "--gate", TEXTS), "--detach"]
    elif command == "abort":
        args = ["abort", draw(refs()), *opt(draw, "--reason", TEXTS), "--detach"]
    elif command == "retire":
        args = ["retire", draw(MODELS)]
        args += [draw(VERSIONS)] if draw(st.booleans()) else []
        args += [*opt(draw, "--force"), "--detach"]
    elif command == "usage":
        args = ["usage", draw(MODELS), *opt(draw, "--version", VERSIONS)]
    elif command == "audit":
        args = ["audit"] + ([draw(TEXTS)] if draw(st.booleans()) else [])
    elif command == "rollback":
        args = ["rollback", draw(ENDPOINTS), *opt(draw, "--strategy", STRATEGIES), "--detach"]
    elif command == "invoke":
        data = st.one_of(
            st.builds(json.dumps, hostile.values()),
            TEXTS,
            st.sampled_from(
                ["[NaN]", "[1e400]", '{"instances": [[Infinity]]}', "1" * 5000, "[" * 5000]
            ),
        )
        # a closed port on this machine: nothing leaves it
        args = ["invoke", draw(ENDPOINTS), "--data", draw(data), "--url", "http://127.0.0.1:9"]
    elif command in ("models", "schema"):
        args = [command]
    else:
        args = [draw(TEXTS)]
    if command in (
        "deploy",
        "register",
        "status",
        "approve",
        "retire",
        "usage",
        "audit",
        "models",
        "rollback",
    ) and draw(st.booleans()):
        args.append("--json")  # fmt: skip
    if draw(st.integers(0, 5)) == 0:  # a stray token somewhere
        args.insert(draw(st.integers(0, len(args))), draw(JUNK))
    glob = opt(draw, "--as", USERS)
    return command, [*glob, *args]


# ---------------------------------------------------------------- the property


_SUFFIX = {"artifact": ".joblib", "golden": ".jsonl", "deployment": ".yaml"}


def fill(box: Sandbox, args: list[str], files: dict[str, bytes]) -> list[str]:
    """The placeholders of `calls` made real: files written, the queued id put in."""
    real = {"REAL-artifact": box.artifact, "REAL-golden": box.golden}
    out = []
    for a in args:
        if a in real:
            a = str(real[a])
        elif a.startswith("FUZZED-"):
            kind = a.removeprefix("FUZZED-")
            a = str(box.write(files[kind], _SUFFIX[kind]))
        elif "QUEUED" in a:
            a = a.replace("QUEUED[:4]", box.queued[:4]).replace("QUEUED[:8]", box.queued[:8])
            a = a.replace("QUEUED", box.queued)
        out.append(a)
    return out


def _deployments(state: dict[str, Any]) -> set[str]:
    return set(state["state"].get("deployments", []))


def check_accepted(box: Sandbox, args: list[str], res: Result, before: dict[str, Any]) -> None:
    """What an accepted command recorded is valid by the documented rules."""
    res.no_traceback()
    command = next((a for a in args if a in {"deploy", "register", "retire", "abort",
                                             "approve", "rollback"}), None)  # fmt: skip
    options = args[: args.index("--")] if "--" in args else args  # after it: arguments
    helped = {"--help", "-h"} & set(options)  # help is text, whatever else was asked
    if "--json" in options and not helped and res.out.strip():
        json.loads(res.out)  # exactly one JSON document
    after = workspace_state(box.home)
    if "--dry-run" in args or command is None:
        assert after == before, "a dry run or a query changed the workspace"
        return
    box_status = box.run(["status", "--json"])
    assert box_status.code == 0, box_status.err
    for d in json.loads(box_status.out):
        assert _MODEL.match(d["model"]) and len(d["model"].replace("_", "--")) <= 48, d
        assert _VERSION.match(str(d["version"])), d
        assert d["id"] == box.queued or _ENDPOINT.match(d["endpoint"]), d
        assert all(_REGION.match(r) and len(r) <= 32 for r in d["regions"]), d
        assert d["requested_by"].isprintable() and d["requested_by"] == d["requested_by"].strip()
    models = box.run(["models", "--json"])
    assert models.code == 0, models.err
    for m in json.loads(models.out):
        assert _MODEL.match(m["name"]) and len(m["name"].replace("_", "--")) <= 48, m
        for v in m["versions"]:
            assert v["library"] in _LIBRARIES and _VERSION.match(str(v["version"])), v


def check_call(box: Sandbox, command: str, args: list[str], files: dict[str, bytes]) -> None:
    args = fill(box, args, files)
    before = workspace_state(box.home)
    outside = tree(box.root, skip=(box.home, box.pristine))
    res = box.run(args, user=None)
    try:
        written = changed_outside(outside, tree(box.root, skip=(box.home, box.pristine)))
        assert written == [], f"written outside the workspace: {written[:5]}"
        if res.code == 0:
            check_accepted(box, args, res, before)
        else:
            line = res.refused_cleanly(1, 2, 3)
            assert "run with --debug" not in line, line  # an error nobody planned for
            assert workspace_state(box.home) == before, "a refused command changed the workspace"
        ran(f"cli {command}", res.code == 0)
    finally:
        if workspace_state(box.home) != before:
            box.restore()
        for leftover in box.inputs.glob("input-*"):
            leftover.unlink()


FILES = st.fixed_dictionaries(
    {
        "deployment": hostile.file_bytes(hostile.yaml_texts(surrogates=True)),
        "golden": hostile.file_bytes(hostile.golden_texts(surrogates=True)),
        "artifact": st.one_of(st.binary(max_size=100), st.just(b"\x80\x04K\x01.")),
    }
)


Call = tuple[str, list[str]]


def command_line(sandbox: Sandbox, call: Call, files: dict[str, bytes]) -> None:
    check_call(sandbox, *call, files)


test_command_line, test_command_line_slow = fast_and_slow(
    command_line, 50, 300, call=calls(), files=FILES
)


# ---------------------------------------------------------------- a deployment file, alone


def check_deployment_file(sandbox: Sandbox, data: bytes, endpoint: bool) -> None:
    """`mmm deploy churn 1 -f FILE --dry-run [--endpoint E]`: the file decides alone (or
    with an endpoint, which it needs to be accepted: churn serves nowhere)."""
    args = ["deploy", "churn", "1", "-f", "FUZZED-deployment", "--dry-run"]
    if endpoint:
        args += ["--endpoint", "fresh"]
    check_call(sandbox, "deploy -f", args, {"deployment": data})


DEPLOYMENT_FILES = hostile.file_bytes(hostile.yaml_texts(surrogates=True))


test_deployment_file_through_the_command, test_deployment_file_through_the_command_slow = (
    fast_and_slow(check_deployment_file, 25, 150, data=DEPLOYMENT_FILES, endpoint=st.booleans())
)


# ---------------------------------------------------------------- settings


def check_settings(box: Sandbox, data: bytes) -> None:
    """A workspace whose mmm.yaml is `data`: `mmm status --json` answers or refuses in one
    line, and reads or writes nothing outside its home."""
    home = box.root / "settings-ws"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    (home / SETTINGS_FILE).write_bytes(data)
    try:
        ws = load_workspace(home)
    except (SpecError, WorkspaceError):
        ws = None
    if ws is not None and ws.settings.backends != Backends():  # not all embedded
        ran("cli status (settings)", False)  # a cloud backend would reach the network
        return
    outside = tree(box.root, skip=(home,))
    res = run_cli(["status", "--json"], {"MMM_HOME": str(home), "MMM_USER": "alice",
                                         "HOME": str(box.root / "userhome")}, box.root)  # fmt: skip
    assert changed_outside(outside, tree(box.root, skip=(home,))) == []
    if ws is None:
        line = res.refused_cleanly(1, 2)
        assert "run with --debug" not in line and SETTINGS_FILE in line, line
        assert sorted(p.name for p in home.iterdir()) == [SETTINGS_FILE]
    else:
        assert res.code == 0, res.err
        assert json.loads(res.out) == []
        res.no_traceback()
    ran("cli status (settings)", ws is not None)


def settings_through_the_command(sandbox: Sandbox, data: bytes) -> None:
    check_settings(sandbox, data)


test_settings_through_the_command, test_settings_through_the_command_slow = fast_and_slow(
    settings_through_the_command,
    20,
    120,
    data=hostile.file_bytes(hostile.settings_texts(surrogates=True)),
)


# ---------------------------------------------------------------- --home for init


def check_init(box: Sandbox, home: str) -> None:
    """`mmm --home HOME init` with a relative HOME (an absolute one could be anywhere on this
    machine): the workspace is made where HOME says and nothing is written elsewhere."""
    cwd = box.root / "cwd"
    cwd.mkdir(exist_ok=True)
    entries = set(box.root.iterdir())
    outside = tree(box.root, skip=(box.home, box.pristine))
    res = run_cli(["--home", home, "init"], {"MMM_USER": "alice",
                                              "HOME": str(box.root / "userhome")}, box.root)  # fmt: skip
    made = changed_outside(outside, tree(box.root, skip=(box.home, box.pristine)))
    try:
        if res.code == 0:
            res.no_traceback()
            target = (cwd / home).resolve()
            stray = [p for p in made if not Path(p).resolve().is_relative_to(target)
                     and not target.is_relative_to(Path(p).resolve())]  # fmt: skip
            assert stray == [], stray[:5]
            assert (target / SETTINGS_FILE).is_file()
        else:
            line = res.refused_cleanly(1, 2)
            assert "run with --debug" not in line, line
            assert made == [], made[:5]
        ran("cli init --home", res.code == 0)
    finally:  # every workspace made goes: the next example starts from the same folders
        for entry in [*cwd.iterdir(), *(set(box.root.iterdir()) - entries)]:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _inside_the_sandbox(home: str) -> bool:
    """Relative to the sandbox's working folder, and not above the sandbox."""
    if not home.strip() or home.startswith(("/", "~")):
        return False
    return not os.path.normpath(os.path.join("cwd", home)).startswith("..")


RELATIVE_HOMES = arg(
    st.one_of(
        st.sampled_from(["ws2", "a/b/c", "../x", "./.", "..\\x", "x/../y", "名字", "sp ace"]),
        hostile.odd_text(surrogates=True),
    ).filter(_inside_the_sandbox)
)


def init_home(sandbox: Sandbox, home: str) -> None:
    check_init(sandbox, home)


test_init_home, test_init_home_slow = fast_and_slow(init_home, 5, 25, home=RELATIVE_HOMES)


def test_a_valid_call_is_accepted(sandbox: Sandbox) -> None:
    """The property sees both outcomes: a plain dry run passes through the same check."""
    check_call(sandbox, "deploy", ["deploy", "churn", "1", "--endpoint", "fresh", "--dry-run"], {})
    spec = yaml.safe_dump({"endpoint": "fresh", "gates": ["before_rollout"]}).encode()
    args = ["deploy", "churn", "1", "-f", "FUZZED-deployment", "--detach"]
    check_call(sandbox, "deploy", args, {"deployment": spec})
    args = ["register", "churn_2", "--artifact", "REAL-artifact", "--library", "sklearn"]
    check_call(sandbox, "register", [*args, "--golden", "REAL-golden", "--json"], {})


def test_valid_settings_pass_the_same_check(sandbox: Sandbox) -> None:
    text = "backends: {store: sqlite}\npolicy: {admins: [root]}\ndefaults: {gates: []}\n"
    check_settings(sandbox, text.encode())


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00[1, 2]\n", b"[1, NaN]\n", b"[" * 3000 + b"]" * 3000, b"[" + b"1" * 5000 + b"]"],
    ids=["not UTF-8", "NaN", "nested 3,000 deep", "a 5,000-digit integer"],
)
def test_a_replay_file_mmm_cannot_send_is_refused_at_the_door(
    sandbox: Sandbox, content: bytes
) -> None:
    """Found by fuzzing: each escaped read_replay as an exception nobody planned for (exit 1,
    'run with --debug') or was accepted (NaN, which no JSON request can carry)."""
    replay = sandbox.write(content, ".jsonl")
    spec = f"endpoint: fresh\nstrategy: {{kind: shadow, traffic: {{replay: {replay}}}}}\n"
    deployment = sandbox.write(spec.encode(), ".yaml")
    try:
        res = sandbox.run(["deploy", "churn", "1", "-f", str(deployment), "--dry-run"])
        line = res.refused_cleanly(2)
        assert "run with --debug" not in line and str(replay) in line, line
    finally:
        replay.unlink()
        deployment.unlink()
