"""A worker, or a notifier, in a process of its own, on a workspace whose endpoints, alarms and
repository are the file-backed recording fakes (tests/support/fakes.py) in `<home>/fakes/`.

    python -m tests.support.worker_process worker HOME [--clock FILE]
        runs a worker until no deployment is left to run, on the store mmm.yaml names (the
        SQLite file, or DynamoDB). With MMM_TEST_EXECUTIONS=FILE in the environment, each
        command it runs is appended to FILE as a JSON line {"key", "pid"} before it runs
        (a command fed back from the command log is not run). With --clock, the worker's clock
        is the UNIX time written in FILE (the test moves it), and the code host is slow in
        that clock: open_change blocks for OPEN_S, checks run for CHECKS_S.
    python -m tests.support.worker_process notifier HOME OUT [--lease S]
        delivers the change feed to a notifier that appends one JSON line per entry to OUT
        (slowly, so a test can kill it half way), until the feed is caught up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.adapters.local.artifacts import LocalArtifactStore
from core.adapters.local.registry import LocalRegistry
from core.bootstrap import build_store, load_workspace
from core.domain import Command, Deployment
from core.feed import FeedEntry
from core.notify import Notifications, SilentNotifier
from core.ports import Change, CheckResult, Ports
from core.worker import Worker
from tests.support.fakes import RecordingCodeHost, RecordingMonitor, RecordingServing

OPEN_S = 5.0  # open_change takes five lease lengths of the test's clock ...
CHECKS_S = 10.0  # ... and the checks ten


def fake_ports(home: Path) -> Ports:
    fakes = home / "fakes"
    fakes.mkdir(exist_ok=True)
    return Ports(
        registry=LocalRegistry(home / "registry"),
        artifacts=LocalArtifactStore(home / "buckets"),
        codehost=RecordingCodeHost(fakes / "codehost.json"),
        serving=RecordingServing(fakes / "serving.json"),
        monitor=RecordingMonitor(fakes / "monitor.json"),
        notifier=SilentNotifier(),
    )


class FileClock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def now(self) -> float:
        return float(self.path.read_text())

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def wait_until(self, t: float) -> None:
        while self.now() < t:
            time.sleep(0.005)


class SlowCodeHost(RecordingCodeHost):
    """Long in the test's clock: every call is written to `<fakes>/calls.jsonl`."""

    def __init__(self, path: Path, clock: FileClock) -> None:
        super().__init__(path)
        self.clock = clock
        self.log = path.with_name("calls.jsonl")

    def _note(self, method: str) -> list[dict[str, Any]]:
        with self.log.open("a") as f:
            f.write(json.dumps({"method": method, "pid": os.getpid(), "at": self.clock.now()}))
            f.write("\n")
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def open_change(
        self, change_id: str, files: dict[str, str], deletions: list[str], title: str, author: str
    ) -> Change:
        self._note("open_change")
        self.clock.wait_until(self.clock.now() + OPEN_S)  # blocks the command
        return super().open_change(change_id, files, deletions, title, author)

    def checks(self, change: Change) -> CheckResult | None:
        calls = [c for c in self._note("checks") if c["method"] == "checks"]
        # the time this look was noted at, not a second reading: the test moves the clock
        # between two readings, and the log must show the checks ran CHECKS_S
        if calls[-1]["at"] < calls[0]["at"] + CHECKS_S:
            return None  # still running: the caller looks again later
        return CheckResult(passed=True, summary="slow checks passed")


ROOT = Path(__file__).resolve().parents[2]


def spawn(home: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`worker HOME [extra...]` in a process of its own (output piped, merged)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.worker_process", "worker", str(home), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_worker(home: Path, clock_file: Path | None) -> None:
    ws = load_workspace(home)
    store = build_store(ws)
    ports = fake_ports(home)
    if clock_file is None:
        worker = Worker(ws, store, ports)
    else:
        clock = FileClock(clock_file)
        ports.codehost = SlowCodeHost(home / "fakes" / "codehost.json", clock)
        worker = Worker(ws, store, ports, clock=clock, sleep=lambda s: time.sleep(0.01))
    executions = os.environ.get("MMM_TEST_EXECUTIONS")
    if executions:
        run = worker.executor.run

        def logged(d: Deployment, cmd: Command) -> Any:
            with open(executions, "a") as f:  # one write per line: lines never interleave
                f.write(json.dumps({"key": cmd.key, "pid": os.getpid()}) + "\n")
            return run(d, cmd)

        worker.executor.run = logged  # type: ignore[method-assign]
    worker.run_once()


class AppendingNotifier:
    """Appends each entry to a file; keeps, per deployment, how many entries it was told."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def deliver(
        self, entry: FeedEntry, deployment: Deployment, kept: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        time.sleep(0.02)  # slow enough for a test to kill it half way
        with self.out.open("a") as f:
            f.write(json.dumps({"seq": entry.seq, "deployment": entry.deployment_id}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return {"told": (kept or {}).get("told", 0) + 1}


def run_notifier(home: Path, out: Path, lease_s: float) -> None:
    store = build_store(load_workspace(home))
    notifications = Notifications(store, AppendingNotifier(out), name="test", lease_s=lease_s)
    while notifications.run_once() or store.cursor("test") < store.last_change():
        time.sleep(0.05)  # the cursor's lease may still be a killed predecessor's


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["worker", "notifier"])
    parser.add_argument("home", type=Path)
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--clock", type=Path)
    parser.add_argument("--lease", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.role == "worker":
        run_worker(args.home, args.clock)
    else:
        run_notifier(args.home, args.out, args.lease)


if __name__ == "__main__":
    main(sys.argv[1:])
