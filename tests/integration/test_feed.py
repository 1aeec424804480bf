"""The change feed: every change in order across processes; notifications follow it from a
durable cursor, at least once and in order, and never hold a rollout up."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.domain import Deployment
from core.feed import FeedEntry
from core.notify import Notifications
from core.service import Service
from core.store.sqlite import SqliteStore
from tests.integration.test_long_steps import ROOT, start_worker, workspace


def feed_of(store: SqliteStore) -> list[FeedEntry]:
    return store.changes_since(0, limit=100_000)


def start_notifier(home: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.worker_process", "notifier", str(home), str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def deploy_three(svc: Service) -> list[str]:
    return [svc.deploy("churn", "1", endpoint=f"churn-{i}").id for i in range(3)]


def test_the_feed_holds_every_change_in_order_across_two_processes(tmp_path: Path) -> None:
    home, svc = workspace(tmp_path)
    ids = deploy_three(svc)
    workers = [start_worker(home) for _ in range(2)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    feed = feed_of(SqliteStore(home / "state.db"))
    assert [e.seq for e in feed] == sorted({e.seq for e in feed})  # one order, no repeats
    for deployment_id in ids:
        d = svc.get(deployment_id)
        assert d.state.value == "succeeded"
        mine = [e for e in feed if e.deployment_id == deployment_id]
        assert mine[0].rev == 1 and [ev.type for ev in mine[0].events] == ["created"]
        revs = [e.rev for e in mine]
        assert revs == sorted(set(revs))  # each change once, in the order it was saved
        assert [ev for e in mine for ev in e.events] == d.events
        assert mine[-1].state.value == "succeeded"


def test_a_killed_notifier_resumes_from_its_cursor(tmp_path: Path) -> None:
    home, svc = workspace(tmp_path)
    deploy_three(svc)
    worker = start_worker(home)
    assert worker.wait(timeout=240) == 0
    store = SqliteStore(home / "state.db")
    everything = [e.seq for e in feed_of(store)]
    assert len(everything) > 20

    out = tmp_path / "delivered.jsonl"
    first = start_notifier(home, out)
    while len(lines(out)) < 10:  # a third of the way at most: kill it there
        assert first.poll() is None, first.communicate()[0]
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    killed_at = len(lines(out))
    assert killed_at < len(everything)

    second = start_notifier(home, out)
    assert second.wait(timeout=240) == 0, second.communicate()[0]
    delivered = [line["seq"] for line in lines(out)]
    assert delivered == sorted(delivered)  # never out of order
    assert sorted(set(delivered)) == everything  # nothing lost
    assert len(delivered) - len(everything) <= 1  # at most the entry in hand when killed
    assert store.cursor("test") == everything[-1]
    # what the notifier keeps per deployment survived the kill
    for deployment_id in {line["deployment"] for line in lines(out)}:
        kept = store.delivery("test", deployment_id)
        told = [s for s in lines(out) if s["deployment"] == deployment_id]
        assert kept is not None and kept["told"] in (len(told), len(told) - 1)


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(s) for s in path.read_text().splitlines() if s.endswith("}")]


class StuckNotifier:
    """Holds its first delivery until the test lets go."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.told: list[int] = []

    def deliver(
        self, entry: FeedEntry, deployment: Deployment, kept: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        self.release.wait()
        self.told.append(entry.seq)
        return None


def test_a_stuck_notifier_does_not_hold_a_rollout_up(tmp_path: Path) -> None:
    home, svc = workspace(tmp_path)
    d = svc.deploy("churn", "1", endpoint="churn")
    notifier = StuckNotifier()
    notifications = Notifications(svc.store, notifier, name="stuck")
    with notifications.running(poll_s=0.01, drain_s=0):
        done = svc.worker().drive(d.id)
        assert done.state.value == "succeeded"  # while the notifier still holds its first entry
        assert notifier.told == []
    notifier.release.set()  # the notifications thread goes on alone, to the end of the feed
    everything = [e.seq for e in feed_of(SqliteStore(home / "state.db"))]
    deadline = time.monotonic() + 120
    while len(notifier.told) < len(everything):
        assert time.monotonic() < deadline, notifier.told
        time.sleep(0.05)
    assert notifier.told == everything
