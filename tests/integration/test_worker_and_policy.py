"""The worker (retries, leases, failures) and the service's policy, in process."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from core.domain import DeploymentState
from core.events import StepRetrying
from core.ports import PortError, TransientError
from core.service import BadRequest, PermissionDenied
from core.steps import Executor
from core.worker import Worker
from tests.integration.conftest import Files, MakeService
from tests.support.fakes import RecordingServing


def registered(make_service: MakeService, model_files: Files, **settings: Any) -> None:
    artifact, golden = model_files(0)
    make_service("alice", settings).register("churn", artifact, "sklearn", golden, "risk")


def test_transient_errors_are_retried_with_backoff(
    make_service: MakeService, model_files: Files
) -> None:
    registered(make_service, model_files)
    svc = make_service("alice", {"worker": {"max_attempts": 4, "backoff_s": 0.25}})
    serving = svc.ports.serving
    assert isinstance(serving, RecordingServing)
    serving.fail_next("apply", TransientError("throttled"), times=2)
    pauses: list[float] = []
    d = svc.deploy("churn", "1", "churn-scorer")
    w = Worker(svc.ws, svc.store, svc.ports, sleep=pauses.append)
    final = w.drive(d.id)
    assert final.state is DeploymentState.SUCCEEDED
    # Not slept on inside the step: the deployment says what it waits on, and when it tries
    # again (exponential backoff), while the worker is free for others.
    retries = [e for e in final.events if isinstance(e, StepRetrying)]
    assert [(e.error, e.attempt) for e in retries] == [("throttled", 1), ("throttled", 2)]
    waits = [
        (datetime.fromisoformat(e.until) - datetime.fromisoformat(e.at)).total_seconds()
        for e in retries
    ]
    assert waits == [0.25, 0.5]
    assert "wait  " in retries[0].line() and "attempt 1" in retries[0].line()


def test_a_permanent_error_fails_after_undoing(
    make_service: MakeService, model_files: Files
) -> None:
    registered(make_service, model_files)
    svc = make_service()
    serving = svc.ports.serving
    assert isinstance(serving, RecordingServing)
    serving.fail_next("apply", PortError("capacity: no ml.m5.large left"), times=1)
    d = svc.run(svc.deploy("churn", "1", "churn-scorer"))
    assert d.state is DeploymentState.FAILED
    assert d.error == "create_variant: capacity: no ml.m5.large left"
    assert svc.ports.artifacts.list("production") == []
    assert svc.ports.registry.get("churn", "1").status.value == "registered"


def test_endless_transient_errors_give_up(make_service: MakeService, model_files: Files) -> None:
    registered(make_service, model_files)
    svc = make_service("alice", {"worker": {"max_attempts": 3, "backoff_s": 0}})
    serving = svc.ports.serving
    assert isinstance(serving, RecordingServing)
    serving.fail_next("apply", TransientError("timeout"), times=3)
    d = svc.run(svc.deploy("churn", "1", "churn-scorer"))
    assert d.state is DeploymentState.FAILED and "gave up after 3 attempts" in (d.error or "")


def test_two_workers_never_run_the_same_command(
    make_service: MakeService, model_files: Files
) -> None:
    registered(make_service, model_files)
    svc = make_service()
    ids = [svc.deploy("churn", "1", f"e{i}").id for i in range(3)]
    runs: Counter[str] = Counter()
    lock = threading.Lock()
    original = Executor.run

    def counting(self: Executor, d: Any, cmd: Any) -> Any:
        with lock:
            runs[cmd.key] += 1
        return original(self, d, cmd)

    Executor.run = counting  # type: ignore[method-assign]
    try:
        workers = [make_service(f"w{i}").worker() for i in range(3)]
        threads = [threading.Thread(target=w.run_once) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for w in workers:
            w.run_once()
    finally:
        Executor.run = original  # type: ignore[method-assign]
    assert all(svc.get(i).state is DeploymentState.SUCCEEDED for i in ids)
    assert runs and max(runs.values()) == 1


def gated(svc: Any) -> Any:
    from core.spec import parse_deployment  # noqa: F401  (the gate comes from settings defaults)

    return svc.run(svc.deploy("churn", "1", "churn-scorer"))


def test_self_approval_refused_unless_policy_allows(
    make_service: MakeService, model_files: Files
) -> None:
    registered(make_service, model_files)
    settings = {"defaults": {"gates": ["before_rollout"]}}
    alice = make_service("alice", settings)
    d = gated(alice)
    assert d.state is DeploymentState.WAITING_APPROVAL
    with pytest.raises(PermissionDenied, match="four-eyes"):
        alice.approve(d.id)
    assert alice.get(d.id).state is DeploymentState.WAITING_APPROVAL
    lenient = make_service("alice", {**settings, "policy": {"allow_self_approval": True}})
    assert lenient.approve(d.id).state is DeploymentState.RUNNING


def test_approvers_per_model_and_team(make_service: MakeService, model_files: Files) -> None:
    registered(make_service, model_files)
    settings = {
        "defaults": {"gates": ["before_rollout"]},
        "policy": {"approvers": {"team:risk": ["carol"], "*": ["dave"]}},
    }
    d = gated(make_service("alice", settings))
    with pytest.raises(PermissionDenied, match="approvers are carol"):
        make_service("bob", settings).approve(d.id)
    assert make_service("carol", settings).approve(d.id).approvals[0].by == "carol"
    audit = make_service("alice", settings).audit_log(d.id)
    assert [(r.actor, r.action) for r in audit][:2] == [
        ("carol", "approve"),
        ("bob", "approve_refused"),
    ]


def test_deployers_and_admins(make_service: MakeService, model_files: Files) -> None:
    registered(make_service, model_files)
    settings = {"policy": {"deployers": ["alice"], "admins": ["root"]}}
    with pytest.raises(PermissionDenied):
        make_service("mallory", settings).deploy("churn", "1", "churn-scorer")
    d = make_service("alice", settings).deploy("churn", "1", "churn-scorer")
    make_service("alice", settings).run(d)
    with pytest.raises(PermissionDenied, match="force"):
        make_service("alice", settings).retire("churn", "1", force=True)
    with pytest.raises(BadRequest, match="live traffic"):
        make_service("alice", settings).retire("churn", "1")
    r = make_service("root", settings).retire("churn", "1", force=True)
    assert make_service("root", settings).run(r).state is DeploymentState.SUCCEEDED


def test_a_worker_in_a_long_command_still_looks_alive(
    make_service: MakeService, model_files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CLI that saw no live worker would run the queued deployment itself, beside it.
    registered(make_service, model_files)
    svc = make_service()
    beats = threading.Semaphore(0)
    original_beat = svc.store.heartbeat

    def heartbeat(worker: str, now: float) -> None:
        original_beat(worker, now)
        beats.release()

    monkeypatch.setattr(svc.store, "heartbeat", heartbeat)
    original = Executor.run
    beaten_meanwhile: list[bool] = []

    def long_copy(self: Executor, dep: Any, cmd: Any) -> Any:
        if cmd.action == "copy_artifact" and not beaten_meanwhile:
            # the command lasts while three more heartbeats are written (or a minute passes)
            beaten_meanwhile.append(all(beats.acquire(timeout=60) for _ in range(3)))
        return original(self, dep, cmd)

    monkeypatch.setattr(Executor, "run", long_copy)
    d = svc.deploy("churn", "1", "churn-scorer")
    stop = threading.Event()
    worker = svc.worker()
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    try:
        assert svc.wait(d.id, timeout_s=120).state is DeploymentState.SUCCEEDED
    finally:
        stop.set()
        thread.join()
    assert beaten_meanwhile == [True]
    assert not svc.store.live_workers(datetime.now().timestamp(), within_s=60)  # it left


def test_a_worker_that_ran_once_is_gone_when_it_returns(
    make_service: MakeService, model_files: Files
) -> None:
    """`mmm worker --once` then `mmm deploy`: the deploy must not see the finished worker as
    alive and leave its deployment queued for nobody (it did, for five seconds)."""
    registered(make_service, model_files)
    svc = make_service()
    svc.deploy("churn", "1", "churn-scorer")  # queued
    assert svc.worker().run_once() == 1
    assert not svc.worker_running()
    d = svc.submit(svc.deploy("churn", "1", "churn-other"))
    assert d.state is DeploymentState.SUCCEEDED


def test_abort_while_a_command_is_in_flight_undoes_its_result_too(
    make_service: MakeService, model_files: Files
) -> None:
    registered(make_service, model_files)
    svc = make_service()
    d = svc.deploy("churn", "1", "churn-scorer")
    other = make_service("bob")
    aborted: list[Any] = []
    original = Executor.run

    def abort_midway(self: Executor, dep: Any, cmd: Any) -> Any:
        out = original(self, dep, cmd)
        if cmd.action == "copy_artifact" and not aborted:
            aborted.append(other.abort(dep.id, "oops"))  # saved while the worker holds the lease
        return out

    Executor.run = abort_midway  # type: ignore[method-assign]
    try:
        final = svc.run(d)
    finally:
        Executor.run = original  # type: ignore[method-assign]
    assert final.state is DeploymentState.ABORTED
    assert svc.ports.artifacts.list("production") == []  # the in-flight copy was undone


def test_a_relative_replay_file_is_pinned_next_to_the_deployment_file(
    make_service: MakeService, model_files: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered(make_service, model_files)
    svc = make_service()
    svc.run(svc.deploy("churn", "1", "churn-scorer"))
    artifact, golden = model_files(1)
    svc.register("churn", artifact, "sklearn", golden)
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "inputs.jsonl").write_text("[0.1, 0.2]\n")
    f = folder / "shadow.yaml"
    f.write_text(
        "endpoint: churn-scorer\nstrategy: {kind: shadow, traffic: {replay: inputs.jsonl}}\n"
    )
    monkeypatch.chdir(tmp_path)  # the worker may run anywhere
    d = svc.deploy("churn", "2", file=f, dry_run=True)
    assert d.spec.strategy.traffic.replay == str(folder / "inputs.jsonl")  # type: ignore[union-attr]
    f.write_text(
        "endpoint: churn-scorer\nstrategy: {kind: shadow, traffic: {replay: nope.jsonl}}\n"
    )
    with pytest.raises(BadRequest, match=r"nope\.jsonl: replay file not found"):
        svc.deploy("churn", "2", file=f)


def test_without_an_endpoint_the_one_that_serves_the_model_is_used(
    make_service: MakeService, model_files: Files
) -> None:
    registered(make_service, model_files)
    svc = make_service()
    with pytest.raises(BadRequest, match="no endpoint"):
        svc.deploy("churn", "1")
    svc.run(svc.deploy("churn", "1", "churn-scorer"))
    artifact, golden = model_files(1)
    svc.register("churn", artifact, "sklearn", golden)
    assert svc.deploy("churn", "2", dry_run=True).endpoint == "churn-scorer"
    svc.run(svc.deploy("churn", "1", "second-scorer"))
    with pytest.raises(BadRequest, match="churn serves on churn-scorer, second-scorer"):
        svc.deploy("churn", "2")
