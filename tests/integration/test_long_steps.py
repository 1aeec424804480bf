"""Long steps never block and never run twice: two worker processes on one injected clock, with a
lease shorter than the steps."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import yaml

from core.bootstrap import load_workspace
from core.domain import Library, iso
from core.service import Service
from core.store.sqlite import SqliteStore
from tests.support.models import train_sklearn_regressor, write_golden
from tests.support.worker_process import CHECKS_S, OPEN_S, fake_ports, spawn

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 1.0
TICK_S = 0.1  # how far the test moves the clock at a time
PATIENCE_S = 30.0  # real seconds a held lease may go unrenewed before the clock moves anyway


def workspace(tmp_path: Path) -> tuple[Path, Service]:
    home = tmp_path / "ws"
    home.mkdir()
    settings = {"worker": {"lease_s": LEASE_S, "poll_s": 0.05, "backoff_s": 0}}
    (home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    svc = Service(load_workspace(home), SqliteStore(home / "state.db"), fake_ports(home), "alice")
    artifact = train_sklearn_regressor(tmp_path / "models")
    golden = write_golden(artifact, Library.SKLEARN, tmp_path / "models")
    svc.register("churn", artifact, "sklearn", golden)
    return home, svc


def start_worker(home: Path, *extra: str) -> subprocess.Popen[str]:
    return spawn(home, *extra)


def time_of(t: float) -> str:
    return iso(datetime.fromtimestamp(t, UTC))


def set_clock(clock: Path, t: float) -> None:
    tmp = clock.with_suffix(".tmp")
    tmp.write_text(f"{t:.3f}")
    tmp.replace(clock)  # the workers never read half a number


def drive_clock(
    clock: Path, lease_left: Callable[[float], float | None], done: Callable[[], bool]
) -> None:
    """Move the clock on while the workers run. A held lease is given the chance to be renewed
    before it would run out: the clock waits (up to PATIENCE_S of real time) for a renewal,
    then moves on anyway, so a worker that does not renew is caught, not waited for."""
    stalled_since: float | None = None
    deadline = time.monotonic() + 600
    while not done():
        assert time.monotonic() < deadline, "the deployment did not end"
        now = float(clock.read_text())
        left = lease_left(now)
        if left is not None and left < LEASE_S / 2:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since < PATIENCE_S:
                time.sleep(0.01)
                continue
        stalled_since = None
        set_clock(clock, now + TICK_S)
        time.sleep(0.005)


def test_a_lease_shorter_than_a_long_step_runs_it_once_across_two_workers(
    tmp_path: Path,
) -> None:
    home, svc = workspace(tmp_path)
    d = svc.deploy("churn", "1", endpoint="churn")
    clock = tmp_path / "clock"
    set_clock(clock, time.time())
    store = SqliteStore(home / "state.db")

    def lease_left(now: float) -> float | None:
        row = store.db.execute(
            "SELECT expires FROM leases WHERE deployment_id = ?", [d.id]
        ).fetchone()
        return None if row is None else float(row[0]) - now

    def done() -> bool:
        current = store.get(d.id)
        return current is not None and not current.active

    workers = [start_worker(home, "--clock", str(clock)) for _ in range(2)]
    try:
        drive_clock(clock, lease_left, done)
    finally:
        outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    final = svc.get(d.id)
    assert final.state.value == "succeeded", final.error
    calls = [json.loads(line) for line in (home / "fakes/calls.jsonl").read_text().splitlines()]
    opens = [c for c in calls if c["method"] == "open_change"]
    checks = [c for c in calls if c["method"] == "checks"]
    # open_change blocked for five lease lengths and still ran once: its lease was kept
    assert len(opens) == 1
    # the checks ran ten lease lengths, looked at again and again, never waited on
    assert len(checks) > 2
    assert checks[-1]["at"] - checks[0]["at"] >= CHECKS_S > OPEN_S
    # while they ran, the feed said since when (once: a look that learns nothing is no news)
    told = [e.progress for e in store.changes_since(0, 10_000) if e.progress]
    started = [p["run_checks"]["started"] for p in told if "run_checks" in p]
    assert len(started) == 1 and started[0] >= time_of(checks[0]["at"])
    succeeded = [e.step for e in final.events if e.type == "step_succeeded"]
    assert succeeded.count("open_change") == 1 and succeeded.count("run_checks") == 1
