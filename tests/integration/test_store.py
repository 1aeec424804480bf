"""The store on every backend (SQLite on a file, DynamoDB on moto's server): revisions,
locks, leases, the command log, audit; and what only the SQLite store has (migrations,
connections across a fork)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.domain import AuditRecord, Deployment, DeploymentState, iso, utcnow
from core.events import StepRetrying
from core.feed import entry_between
from core.spec import parse_deployment
from core.store import Busy, Conflict, Store
from core.store.sqlite import SqliteStore
from tests.support.moto_server import aws, aws_as_left  # noqa: F401
from tests.support.stores import OpenStore, open_store, store  # noqa: F401


def draft(id_: str = "dep-1", endpoint: str = "churn", by: str = "alice") -> Deployment:
    now = iso(utcnow())
    return Deployment(
        id=id_,
        model="churn",
        version=1,
        endpoint=endpoint,
        regions=["local"],
        spec=parse_deployment({"endpoint": endpoint}),
        requested_by=by,
        created_at=now,
        updated_at=now,
    )


def audit(target: str = "dep-1", actor: str = "alice") -> AuditRecord:
    return AuditRecord(at=iso(utcnow()), actor=actor, action="deploy", target=target)


def test_create_get_and_save_bump_the_revision(store: Store) -> None:  # noqa: F811
    d = store.create(draft(), ["endpoint:churn"], audit())
    assert d.rev == 1
    loaded = store.get("dep-1")
    assert loaded is not None and loaded.model_dump() == d.model_dump()
    saved = store.save(loaded.model_copy(update={"state": DeploymentState.RUNNING}))
    assert saved.rev == 2
    fetched = store.get("dep-1")
    assert fetched is not None and fetched.state is DeploymentState.RUNNING


def test_a_stale_revision_is_a_conflict_and_changes_nothing(store: Store) -> None:  # noqa: F811
    d = store.create(draft(), [], audit())
    store.save(d.model_copy(update={"state": DeploymentState.RUNNING}))
    with pytest.raises(Conflict):
        store.save(d.model_copy(update={"state": DeploymentState.ABORTED}))
    fetched = store.get("dep-1")
    assert fetched is not None and fetched.state is DeploymentState.RUNNING


def test_two_writers_racing_never_both_win(open_store: OpenStore) -> None:  # noqa: F811
    open_store().create(draft(), [], audit())
    wins: list[str] = []
    barrier = threading.Barrier(8)
    stores = [open_store() for _ in range(8)]

    def writer(n: int) -> None:
        s = stores[n]
        d = s.get("dep-1")
        assert d is not None
        barrier.wait()
        try:
            s.save(d.model_copy(update={"error": f"writer {n}"}))
            wins.append(f"writer {n}")
        except Conflict:
            pass

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    final = open_store().get("dep-1")
    assert final is not None and final.error == wins[0] and final.rev == 2


def test_one_active_deployment_per_endpoint(store: Store) -> None:  # noqa: F811
    d = store.create(draft("dep-1"), ["endpoint:churn"], audit())
    with pytest.raises(Busy) as err:
        store.create(draft("dep-2", by="bob"), ["endpoint:churn"], audit("dep-2", "bob"))
    assert err.value.deployment_id == "dep-1" and err.value.requested_by == "alice"
    assert store.get("dep-2") is None
    assert [r.target for r in store.audit_log()] == ["dep-1"]  # the refused one left no trace
    store.save(d.model_copy(update={"state": DeploymentState.SUCCEEDED}))
    store.create(draft("dep-3"), ["endpoint:churn"], audit("dep-3"))  # free again


def test_leases_exclude_other_owners_until_they_expire(store: Store) -> None:  # noqa: F811
    store.create(draft(), [], audit())
    assert store.acquire_lease("dep-1", "w1", ttl_s=10, now=100.0)
    assert store.acquire_lease("dep-1", "w1", ttl_s=10, now=105.0)  # renewal
    assert not store.acquire_lease("dep-1", "w2", ttl_s=10, now=110.0)
    assert store.acquire_lease("dep-1", "w2", ttl_s=10, now=116.0)  # w1's lease ran out
    store.release_lease("dep-1", "w2")
    assert store.acquire_lease("dep-1", "w3", ttl_s=10, now=117.0)


def test_command_log_keeps_the_first_result(store: Store) -> None:  # noqa: F811
    assert store.command_result("k") is None
    store.record_command("k", "dep-1", {"result": {"n": 1}}, "t")
    store.record_command("k", "dep-1", {"result": {"n": 2}}, "t")
    assert store.command_result("k") == {"result": {"n": 1}}


def test_runnable_skips_gated_and_sleeping_deployments(store: Store) -> None:  # noqa: F811
    d = store.create(draft(), [], audit())
    assert store.runnable(now=0) == ["dep-1"]  # queued
    assert store.runnable(now=float("inf")) == ["dep-1"]  # what a worker waits for
    gated = d.model_copy(update={"state": DeploymentState.WAITING_APPROVAL, "pending": []})
    d = store.save(gated)
    assert store.runnable(now=1e12) == []


def test_reopening_migrates_once(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "s.db").create(draft(), [], audit())
    again = SqliteStore(tmp_path / "s.db")
    assert again.get("dep-1") is not None
    applied = again.db.execute("SELECT name FROM _sqlite_migrations").fetchall()
    assert [r[0] for r in applied] == [
        "m001_initial",
        "m002_shared_locks",
        "m003_intents",
        "m004_feed",
        "m005_listing",
        "m006_usage_index",
    ]
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_find_by_prefix(store: Store) -> None:  # noqa: F811
    store.create(draft("dep-260101-abc123"), [], audit())
    store.create(draft("dep-260101-abd999", endpoint="other"), [], audit())
    assert [d.id for d in store.find("dep-260101-abc")] == ["dep-260101-abc123"]
    assert len(store.find("dep-260101-ab")) == 2


def test_shared_locks_go_together_and_exclusive_ones_wait_for_every_holder(
    store: Store,  # noqa: F811
) -> None:
    store.create(draft("dep-a", endpoint="a"), ["endpoint:a"], audit(), shared=["version:m:1"])
    store.create(draft("dep-b", endpoint="b"), ["endpoint:b"], audit(), shared=["version:m:1"])
    with pytest.raises(Busy) as busy:
        store.create(draft("ret-1", endpoint="x"), ["version:m:1"], audit())
    assert busy.value.deployment_id in {"dep-a", "dep-b"}
    for id_ in ("dep-a", "dep-b"):
        d = store.get(id_)
        assert d is not None
        store.save(d.model_copy(update={"state": DeploymentState.ABORTED}))
    store.create(draft("ret-1", endpoint="x"), ["version:m:1"], audit())
    with pytest.raises(Busy, match="ret-1"):
        store.create(draft("dep-c", endpoint="c"), ["endpoint:c"], audit(), shared=["version:m:1"])
    assert store.get("dep-c") is None  # nothing half-created


def test_remember_keeps_the_first_value_and_computes_it_once(store: Store) -> None:  # noqa: F811
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    assert store.remember("dep-1/007/shift:10", "dep-1", compute) == {"n": 1}
    assert store.remember("dep-1/007/shift:10", "dep-1", compute) == {"n": 1}
    assert len(calls) == 1


def test_a_program_started_while_another_thread_holds_the_store_starts(tmp_path: Path) -> None:
    """A child forked to run a program drops the other threads' connections at once; that
    must not wait for locks those threads held at the fork (it would hang before exec)."""
    store = SqliteStore(tmp_path / "state.db")  # noqa: F811
    holding, release = threading.Event(), threading.Event()

    def busy() -> None:
        store.db  # noqa: B018  (this thread's own connection)
        with store._connections._lock:
            holding.set()
            release.wait()

    thread = threading.Thread(target=busy)
    thread.start()
    holding.wait()
    proc = subprocess.Popen([sys.executable, "-c", "pass"], preexec_fn=lambda: None)
    try:
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
        release.set()
        thread.join()


def test_the_feed_is_in_commit_order_with_many_writers(open_store: OpenStore) -> None:  # noqa: F811
    first = open_store()
    ids = [f"dep-{n}" for n in range(4)]
    for id_ in ids:
        first.create(draft(id_, endpoint=id_), [f"endpoint:{id_}"], audit(id_))
    start = first.last_change()
    assert [e.deployment_id for e in first.changes_since(0)] == ids

    def writer(id_: str) -> None:
        s = open_store()
        for n in range(5):
            before = s.get(id_)
            assert before is not None
            after = before.model_copy(update={"error": f"look {n}"}, deep=True)
            after.events.append(StepRetrying(at=iso(utcnow()), step="x", error=f"e{n}",
                                             attempt=n + 1, until=iso(utcnow())))  # fmt: skip
            s.save(after, entry=entry_between(before, after))

    threads = [threading.Thread(target=writer, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    feed = first.changes_since(start)
    assert len(feed) == 20
    seqs = [e.seq for e in feed]
    assert seqs == sorted(seqs) and len(set(seqs)) == 20
    for id_ in ids:  # each deployment's changes in the order of its revisions
        assert [e.rev for e in feed if e.deployment_id == id_] == [2, 3, 4, 5, 6]
    assert first.last_change() == seqs[-1]
    assert first.changes_since(seqs[9], limit=3) == feed[10:13]


def test_cursors_deliveries_and_workers(store: Store) -> None:  # noqa: F811
    assert store.cursor("slack") == 0 and store.last_change() == 0
    store.set_cursor("slack", 7)
    store.set_cursor("slack", 9)
    assert store.cursor("slack") == 9 and store.cursor("other") == 0
    assert store.delivery("slack", "dep-1") is None
    store.set_delivery("slack", "dep-1", {"channel": "C1", "ts": "1.2"})
    store.set_delivery("slack", "dep-1", {"channel": "C1", "ts": "1.3"})
    assert store.delivery("slack", "dep-1") == {"channel": "C1", "ts": "1.3"}
    store.heartbeat("w1", 100.0)
    store.heartbeat("w2", 90.0)
    assert sorted(store.live_workers(now=105.0, within_s=10)) == ["w1"]
    store.forget_worker("w1")
    assert store.live_workers(now=105.0, within_s=100) == ["w2"]


def test_an_ended_deployment_holds_no_lease_and_no_lock(store: Store) -> None:  # noqa: F811
    d = store.create(draft(), ["endpoint:churn"], audit(), shared=["version:churn:1"])
    assert store.acquire_lease("dep-1", "w1", ttl_s=60, now=100.0)
    d = store.save(d.model_copy(update={"state": DeploymentState.FAILED}))
    assert store.acquire_lease("dep-1", "w2", ttl_s=60, now=101.0)  # w1's went with it
    store.create(draft("ret-1", endpoint="churn"), ["endpoint:churn", "version:churn:1"],
                 audit("ret-1"))  # fmt: skip
    # saving an ended deployment again (a note on it) changes no lock
    store.save(d.model_copy(update={"error": "noted"}))
    with pytest.raises(Busy, match="ret-1"):
        store.create(draft("dep-2"), ["endpoint:churn"], audit("dep-2"))
