"""The model child's fork server: one zygote per process, a fresh fork per model.

`core.runtime.child.call` starts one zygote per process, which imports the
numeric libraries once, and loads every model in a fork of its own. These
tests load ordinary and hostile models (`tests.support.hostile`) through it:
checks reuse the zygote, a model that kills its process or patches its
libraries affects no other check, a timeout ends the zygote, and the zygote
and its forks die with the process that started them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core.checks import check_artifact
from core.domain import Library
from core.ports import InvalidInput
from core.runtime import child
from core.runtime.child import ChildDied, call
from tests.support.exfil import read_records, train_exfil_regressor
from tests.support.hostile import read_loads, train_hostile_regressor
from tests.support.models import sample_instances, train_sklearn_regressor, write_golden
from tests.support.processes import gone

ROOT = Path(__file__).resolve().parents[2]


def wait_gone(pid: int, what: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)  # do not leave it running after the test
            pytest.fail(f"{what} (pid {pid}) is still running")
        time.sleep(0.05)


def rows_golden(folder: Path, n: int = 5) -> Path:
    """Golden data of `n` diabetes rows; the artifact check does not judge outputs."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "rows.golden.jsonl"
    rows = sample_instances(10, n)
    path.write_text("".join(json.dumps({"input": r, "output": 0.0}) + "\n" for r in rows))
    return path


def check_request(artifact: Path, golden: Path | None = None) -> dict[str, Any]:
    return {
        "op": "check",
        "artifact": str(artifact),
        "library": "sklearn",
        "golden": str(golden) if golden is not None else None,
    }


@pytest.fixture
def plain(tmp_path: Path) -> tuple[Path, Path]:
    """An ordinary Ridge model and its golden data (20 cases)."""
    artifact = train_sklearn_regressor(tmp_path / "models")
    return artifact, write_golden(artifact, Library.SKLEARN, tmp_path / "models")


def check_plain(plain: tuple[Path, Path], scratch: Path) -> int:
    return check_artifact(plain[0], Library.SKLEARN, plain[1], scratch)


def warm(plain: tuple[Path, Path], scratch: Path) -> int:
    """Check the ordinary model (starting the zygote if need be); the zygote's pid."""
    assert check_plain(plain, scratch) == 20
    pid = child._zygote_pid()
    assert pid is not None and pid != os.getpid()
    return pid


# ---------------------------------------------------------------- one zygote, a fork per model


def test_checks_in_one_process_reuse_one_zygote_and_each_loads_in_a_fork(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    artifact = train_exfil_regressor(tmp_path / "models", record)
    golden = rows_golden(tmp_path / "models")
    scratch = tmp_path / "scratch"

    assert check_artifact(artifact, Library.SKLEARN, golden, scratch) == 5
    zygote = child._zygote_pid()
    assert zygote is not None
    assert check_artifact(artifact, Library.SKLEARN, golden, scratch) == 5
    assert child._zygote_pid() == zygote

    loads = [r for r in read_records(record) if r["event"] == "load"]
    assert len(loads) == 2
    forks = {r["pid"] for r in loads}
    assert len(forks) == 2  # a fresh fork for each model
    assert not forks & {zygote, os.getpid()}
    assert {r["ppid"] for r in loads} == {zygote}  # forked by the zygote
    assert all(gone(pid) for pid in forks)
    # Forking is safe from a single-threaded process only: the zygote has one thread.
    assert os.listdir(f"/proc/{zygote}/task") == [str(zygote)]
    assert list(scratch.iterdir()) == []


def test_concurrent_calls_take_turns_on_one_zygote(
    tmp_path: Path, plain: tuple[Path, Path]
) -> None:
    zygote = warm(plain, tmp_path / "scratch")
    results: list[int] = []
    errors: list[BaseException] = []

    def check(i: int) -> None:
        try:
            results.append(check_plain(plain, tmp_path / f"scratch-{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=check, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and results == [20] * 4
    assert child._zygote_pid() == zygote


def test_what_the_model_prints_does_not_reach_the_answer(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    printer = train_hostile_regressor(tmp_path / "models", "print", record)
    golden = rows_golden(tmp_path / "models")
    assert check_artifact(printer, Library.SKLEARN, golden, tmp_path / "scratch") == 5
    assert len(read_loads(record)) == 1


# ---------------------------------------------------------------- hostile models


@pytest.mark.parametrize(
    ("action", "how"),
    [("exit", r"^exited with 3: hostile: exiting with 3$"), ("sigkill", r"^killed by SIGKILL$")],
)
def test_a_model_that_ends_its_process_gets_child_died_and_the_zygote_carries_on(
    tmp_path: Path, plain: tuple[Path, Path], action: str, how: str
) -> None:
    zygote = warm(plain, tmp_path / "scratch")
    record = tmp_path / "record.jsonl"
    hostile = train_hostile_regressor(tmp_path / "models", action, record)

    with pytest.raises(ChildDied, match=how):
        call(check_request(hostile), cwd=tmp_path / "cwd", timeout_s=60)
    (load,) = read_loads(record)
    assert load["ppid"] == zygote and gone(load["pid"])
    # what the artifact check says about it
    with pytest.raises(InvalidInput, match=r"the model check gave no answer \((exited|killed)"):
        check_artifact(hostile, Library.SKLEARN, None, tmp_path / "scratch")

    assert check_plain(plain, tmp_path / "scratch") == 20
    assert child._zygote_pid() == zygote


def test_a_model_that_kills_the_zygote_is_tried_once_more_then_child_died(
    tmp_path: Path, plain: tuple[Path, Path]
) -> None:
    first = warm(plain, tmp_path / "scratch")
    record = tmp_path / "record.jsonl"
    hostile = train_hostile_regressor(tmp_path / "models", "kill-parent", record)

    with pytest.raises(ChildDied, match=r"^killed by SIGKILL"):
        call(check_request(hostile), cwd=tmp_path / "cwd", timeout_s=60)
    loads = read_loads(record)
    assert [r["ppid"] for r in loads][:1] == [first] and len(loads) == 2  # a second zygote
    second = loads[1]["ppid"]
    assert second != first
    for r in loads:
        wait_gone(r["ppid"], "a killed zygote")
        wait_gone(r["pid"], "the fork of a killed zygote")

    assert check_plain(plain, tmp_path / "scratch") == 20
    assert child._zygote_pid() not in (None, first, second)


def test_what_a_model_changes_in_its_process_does_not_reach_the_next_check(
    tmp_path: Path, plain: tuple[Path, Path]
) -> None:
    zygote = warm(plain, tmp_path / "scratch")
    record = tmp_path / "record.jsonl"
    patcher = train_hostile_regressor(tmp_path / "models", "patch", record)
    golden = rows_golden(tmp_path / "models")

    # Its own check fails: the patch works in the process that loaded it ...
    with pytest.raises(InvalidInput, match=r"gave 0 predictions for 1 instances"):
        check_artifact(patcher, Library.SKLEARN, golden, tmp_path / "scratch")
    # ... and nowhere else: a Ridge model checked next predicts as it should,
    assert check_plain(plain, tmp_path / "scratch") == 20
    # and the patcher loaded again finds no trace of its first load.
    with pytest.raises(InvalidInput, match=r"gave 0 predictions"):
        check_artifact(patcher, Library.SKLEARN, golden, tmp_path / "scratch")
    loads = read_loads(record)
    assert len(loads) == 2
    clean = {"env": None, "module": None, "ridge": False}
    assert [r["marks"] for r in loads] == [clean, clean]
    assert child._zygote_pid() == zygote


# ---------------------------------------------------------------- timeouts and restarts


def test_a_call_that_times_out_kills_the_zygote_and_the_next_starts_another(
    tmp_path: Path, plain: tuple[Path, Path]
) -> None:
    first = warm(plain, tmp_path / "scratch")
    record = tmp_path / "record.jsonl"
    hang = train_hostile_regressor(tmp_path / "models", "hang", record)

    with pytest.raises(ChildDied, match=r"^no answer within 2 s$"):
        call(check_request(hang), cwd=tmp_path / "cwd", timeout_s=2)
    (load,) = read_loads(record)
    assert load["ppid"] == first
    assert child._zygote_pid() is None
    wait_gone(first, "the zygote of a call that timed out")
    wait_gone(load["pid"], "the fork of a call that timed out")

    second = warm(plain, tmp_path / "scratch")
    assert second != first


def test_a_changed_environment_starts_a_new_zygote(
    tmp_path: Path, plain: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = warm(plain, tmp_path / "scratch")
    monkeypatch.setenv("LC_ZYGOTE_TEST", "changed")  # allowlisted: a child sees it
    record = tmp_path / "record.jsonl"
    spy = train_exfil_regressor(tmp_path / "models", record)
    assert check_artifact(spy, Library.SKLEARN, None, tmp_path / "scratch") == 0
    (load,) = read_records(record)
    assert load["env"]["LC_ZYGOTE_TEST"] == "changed"
    assert load["ppid"] != first and load["ppid"] == child._zygote_pid()
    wait_gone(first, "the zygote of the former environment")


# ---------------------------------------------------------------- dying with the parent

PARENT = """\
import sys, threading
from pathlib import Path
from core.checks import check_artifact
from core.domain import Library
from core.runtime import child

plain, hang, scratch = map(Path, sys.argv[1:])
# The first call comes from a thread that ends: the zygote must outlive it.
first = threading.Thread(target=check_artifact, args=(plain, Library.SKLEARN, None, scratch))
first.start()
first.join()
print(child._zygote_pid(), flush=True)
check_artifact(hang, Library.SKLEARN, None, scratch)
"""


def test_the_zygote_outlives_the_first_caller_thread_and_dies_with_its_process(
    tmp_path: Path, plain: tuple[Path, Path]
) -> None:
    record = tmp_path / "record.jsonl"
    hang = train_hostile_regressor(tmp_path / "models", "hang", record)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(plain[0]), str(hang), str(tmp_path / "scratch")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert parent.stdout is not None
        zygote = int(parent.stdout.readline())
        deadline = time.monotonic() + 60
        while not read_loads(record):
            assert parent.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        (load,) = read_loads(record)
        assert load["ppid"] == zygote  # the same zygote serves the second call
    finally:
        parent.kill()
        parent.wait()
    wait_gone(zygote, "the zygote of a killed process")
    wait_gone(load["pid"], "the fork of a killed process")
