"""A worker killed with SIGKILL in the middle of a step leaves no scratch and no process behind.

The worker is killed from outside while the step is under way (not at a
crash point between steps, where every temporary folder is already gone):
in validate while its model check loads the artifact, in run_checks while
the application's tests run, in analyze while the charts are drawn. The
processes it started die with it, and once the next worker has finished the
deployment, `<home>/tmp` is empty and the system's temporary folder holds no
checkout of the application.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from core.adapters.local.codehost import LocalGitCodeHost
from core.domain import Library
from tests.e2e.conftest import MMM, Workspace, start_replayed_shadow
from tests.support.exfil import read_records, train_exfil_regressor
from tests.support.models import write_golden
from tests.support.processes import gone

pytestmark = pytest.mark.slow  # the crash matrix: `make test-slow`

LEASE_S = 1


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace with churn v1 registered and a short lease, copied for every case."""
    root = tmp_path_factory.mktemp("crash-scratch-template")
    ws = Workspace(home=root / "ws", models=root / "models")
    ws.ok("init")
    settings = yaml.safe_load((ws.home / "mmm.yaml").read_text())
    settings["worker"] = {"lease_s": LEASE_S, "poll_s": 0.2}
    (ws.home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    ws.register()
    return ws


@pytest.fixture
def ws(template: Workspace, tmp_path: Path) -> Workspace:
    w = Workspace(home=tmp_path / "ws", models=template.models)
    shutil.copytree(template.home, w.home)
    return w


def worker_env(ws: Workspace, system_tmp: Path) -> dict[str, str]:
    env = ws.env("worker")
    env["TMPDIR"] = str(system_tmp)  # the worker's "system temporary folder", watched here
    return env


def kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    """SIGKILL the worker as soon as `ready()`, which must happen while it runs."""
    deadline = time.monotonic() + 240
    while not ready():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the worker exited {proc.returncode} before {what}: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no sign of {what} within 240 s")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


def wait_gone(pid: int, what: str) -> None:
    deadline = time.monotonic() + 10
    while not gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)  # do not leave it running after the test
            pytest.fail(f"{what} (pid {pid}) outlived the killed worker")
        time.sleep(0.05)


def start_worker(ws: Workspace, system_tmp: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(MMM), "worker", "--once"],
        env=worker_env(ws, system_tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(ws: Workspace, dep: str, system_tmp: Path) -> None:
    """The next worker finishes the deployment; nothing is left of the dead one."""
    time.sleep(LEASE_S + 0.2)  # the dead worker's lease runs out
    proc = subprocess.run(
        [str(MMM), "worker", "--once"],
        env=worker_env(ws, system_tmp),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    d = ws.ok("status", dep, "--json").json()
    assert d["state"] == "succeeded", d["error"]
    scratch = ws.home / "tmp"
    left = (
        sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*")) if scratch.exists() else []
    )
    assert left == []
    assert sorted(p.name for p in system_tmp.glob("mmm-*")) == []


def scratch_entries(ws: Workspace, prefix: str) -> list[Path]:
    """`prefix*` folders in `<home>/tmp` or one level down (a per-process folder)."""
    root = ws.home / "tmp"
    if not root.exists():
        return []
    return [*root.glob(f"{prefix}*"), *root.glob(f"*/{prefix}*")]


def test_killed_in_validate_while_the_model_loads(ws: Workspace, tmp_path: Path) -> None:
    record, hold = tmp_path / "record.jsonl", tmp_path / "hold"
    artifact = train_exfil_regressor(ws.models, record, hold)
    golden = write_golden(artifact, Library.SKLEARN, ws.models)
    ws.ok("register", "spy", "--artifact", str(artifact), "--library", "sklearn",
          "--golden", str(golden))  # fmt: skip
    dep = ws.ok("deploy", "spy", "1", "--endpoint", "spy-scorer", "--detach").out.strip()
    record.unlink()
    hold.touch()  # the next load waits until the worker is killed

    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    proc = start_worker(ws, system_tmp)
    kill_when(proc, lambda: bool(read_records(record)), "the model loading in validate")
    (load,) = read_records(record)
    assert load["pid"] != proc.pid  # loaded in a child, not in the worker
    wait_gone(load["pid"], "the model check")
    hold.unlink()

    finish(ws, dep, system_tmp)


CONFTEST = """\
import os, time
from pathlib import Path

Path({pidfile!r}).write_text(str(os.getpid()))
_deadline = time.monotonic() + 120
while Path({hold!r}).exists() and time.monotonic() < _deadline:
    time.sleep(0.02)
"""


def test_killed_in_run_checks_while_pytest_runs(ws: Workspace, tmp_path: Path) -> None:
    pidfile, hold = tmp_path / "pytest.pid", tmp_path / "hold"
    app = LocalGitCodeHost(ws.home / "repo")  # the application commits a slow conftest
    conftest = CONFTEST.format(pidfile=str(pidfile), hold=str(hold))
    app.merge(app.open_change("slow-tests", {"tests/conftest.py": conftest}, [], "t", "dev"))
    dep = ws.ok("deploy", "churn", "1", "--endpoint", "churn-scorer", "--detach").out.strip()
    hold.touch()

    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    proc = start_worker(ws, system_tmp)
    kill_when(proc, pidfile.exists, "pytest starting in run_checks")
    wait_gone(int(pidfile.read_text()), "pytest")
    hold.unlink()

    finish(ws, dep, system_tmp)


def test_killed_in_analyze_while_the_charts_are_drawn(ws: Workspace, tmp_path: Path) -> None:
    dep = start_replayed_shadow(ws, tmp_path, rows=600)

    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    proc = start_worker(ws, system_tmp)
    kill_when(proc, lambda: bool(scratch_entries(ws, "report-")), "the charts of analyze")

    finish(ws, dep, system_tmp)
    d = ws.ok("status", dep, "--json").json()
    assert d["analysis"]["verdict"] == "pass" and d["analysis"]["report"]
