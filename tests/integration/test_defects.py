"""Defects found from outside, each as the user story that must hold (service and worker,
in process, on a real SQLite store and registry with recording fakes for the rest)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.domain import DeploymentState, utcnow
from core.layout import alarm_name
from core.machine import Start
from core.ports import Variant
from core.service import BadRequest, PermissionDenied, Service, WaitTimeout
from core.spec import Alarms
from core.steps import Executor
from core.store.sqlite import SqliteStore
from core.worker import Worker
from tests.integration.conftest import Files, MakeService
from tests.support.fakes import RecordingMonitor, RecordingServing

ADMIN = {"policy": {"admins": ["root"]}}
BAKED = {"kind": "blue-green", "steps": [50, 100], "bake_s": 3600}


def register(svc: Service, model_files: Files, name: str = "churn", seed: int = 0) -> int:
    artifact, golden = model_files(seed)
    return svc.register(name, artifact, "sklearn", golden, "risk").version


def deploy_file(tmp_path: Path, **spec: Any) -> Path:
    f = tmp_path / f"deploy-{len(list(tmp_path.glob('deploy-*')))}.yaml"
    f.write_text(json.dumps(spec))  # JSON is YAML
    return f


def weights(svc: Service, endpoint: str = "churn-scorer") -> dict[str, float]:
    config = svc.ports.serving.get_endpoint(endpoint, "local")
    return {} if config is None else {v.name: v.weight for v in config.variants}


def in_bake(svc: Service, tmp_path: Path, version: str) -> str:
    """Deploy `version` blue-green with an hour-long bake and run it into that bake."""
    d = svc.deploy("churn", version, file=deploy_file(tmp_path, strategy=BAKED))
    while not (d.pending and d.pending[0].action == "bake" and d.wake_at):
        d = svc.run(d, timeout_s=0)  # as far as it goes now: a bake returns at once
    return d.id


# ---------------------------------------------------------------- 1. unreadable records


def corrupt(
    store: SqliteStore, deployment_id: str, change: Callable[[dict[str, Any]], Any]
) -> None:
    body = json.loads(
        store.db.execute("SELECT body FROM deployments WHERE id = ?", [deployment_id]).fetchone()[0]
    )
    new = change(body)
    text = new if isinstance(new, str) else json.dumps(body)
    store.db.execute("UPDATE deployments SET body = ? WHERE id = ?", [text, deployment_id])


@pytest.mark.parametrize("how", ["null value", "not json"])
def test_a_record_that_cannot_be_read_is_listed_skipped_and_can_be_aborted(
    make_service: MakeService, model_files: Files, how: str
) -> None:
    svc = make_service()
    register(svc, model_files)
    bad = svc.deploy("churn", "1", "dia")
    good = svc.deploy("churn", "1", "other")
    assert isinstance(svc.store, SqliteStore)
    if how == "null value":  # what an older release saved for `p99_latency_ms: .inf`
        corrupt(svc.store, bad.id, lambda b: b["spec"]["alarms"].update(p99_latency_ms=None))
    else:
        corrupt(svc.store, bad.id, lambda b: "{not json")

    listed = {d.id: d for d in svc.deployments()}
    assert set(listed) == {bad.id, good.id}
    assert listed[bad.id].damaged and "cannot be read" in str(listed[bad.id].public()["error"])
    assert Worker(svc.ws, svc.store, svc.ports).run_once() >= 1  # no exception
    assert svc.get(good.id).state is DeploymentState.SUCCEEDED
    assert svc.get(bad.id).state is DeploymentState.QUEUED  # skipped, not run

    with pytest.raises(BadRequest, match="busy"):
        svc.deploy("churn", "1", "dia")
    ended = svc.run(svc.abort(bad.id))
    assert ended.state is DeploymentState.ABORTED
    assert svc.get(bad.id).damaged is None  # saved readable again
    assert svc.deploy("churn", "1", "dia").active  # the endpoint is free again


# ---------------------------------------------------------------- 2, 3. locks


def test_retirement_is_refused_while_a_rollout_runs_on_the_endpoint(
    make_service: MakeService, model_files: Files, tmp_path: Path
) -> None:
    svc = make_service("alice", ADMIN)
    register(svc, model_files, seed=0)
    svc.run(svc.deploy("churn", "1", "churn-scorer"))
    register(svc, model_files, seed=1)
    running = in_bake(svc, tmp_path, "2")
    root = make_service("root", ADMIN)
    with pytest.raises(BadRequest, match=f"endpoint churn-scorer is busy: {running}"):
        root.retire("churn", "1", force=True)
    aborted = svc.run(svc.abort(running))
    assert aborted.state is DeploymentState.ABORTED
    assert weights(svc) == {"churn-v1": 100.0}
    statuses = {mv.version: mv.status.value for mv in svc.ports.registry.versions("churn")}
    assert statuses["1"] == "production"


def test_a_version_is_never_deployed_and_retired_at_once(
    make_service: MakeService, model_files: Files
) -> None:
    svc = make_service()
    register(svc, model_files)
    first = svc.deploy("churn", "1", "one")
    second = svc.deploy("churn", "1", "two")  # one version to two endpoints stays allowed
    with pytest.raises(BadRequest, match="churn v1 is being deployed by dep-") as refused:
        svc.retire("churn", "1")
    assert first.id in str(refused.value) or second.id in str(refused.value)
    svc.run(svc.abort(first.id))
    svc.run(svc.abort(second.id))
    retirement = svc.retire("churn", "1")
    with pytest.raises(BadRequest, match=f"churn v1 is being retired by {retirement.id}"):
        svc.deploy("churn", "1", "three")


def race(deploy: Callable[[], Any], retire: Callable[[], Any]) -> list[str]:
    """Run both at the same moment; what each got."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def act(call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            call()
            outcomes.append("ok")
        except BadRequest:
            outcomes.append("refused")

    threads = [threading.Thread(target=act, args=(c,)) for c in (deploy, retire)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcomes)


def test_a_deploy_and_a_retire_at_the_same_moment_never_both_pass(
    make_service: MakeService, model_files: Files
) -> None:
    register(make_service(), model_files)
    for attempt in range(5):
        one, two = make_service(), make_service()
        outcomes = race(
            lambda: one.deploy("churn", "1", f"race-{attempt}"),  # noqa: B023
            lambda: two.retire("churn", "1"),  # noqa: B023
        )
        assert outcomes == ["ok", "refused"]
        for d in one.deployments(active_only=True):
            one.run(one.abort(d.id))


def test_an_endpoint_step_run_again_makes_the_same_change_and_undo_keeps_others_changes(
    make_service: MakeService, model_files: Files, tmp_path: Path
) -> None:
    svc = make_service()
    register(svc, model_files, seed=0)
    svc.run(svc.deploy("churn", "1", "churn-scorer"))
    register(svc, model_files, seed=1)
    d = svc.deploy(
        "churn", "2", file=deploy_file(tmp_path, strategy=BAKED, endpoint="churn-scorer")
    )
    w = Worker(svc.ws, svc.store, svc.ports)
    while True:  # up to the first traffic shift, not yet run
        d = svc.get(d.id)
        if d.state is DeploymentState.QUEUED:
            w.apply(d, Start(at=utcnow()))
            continue
        if d.pending[0].action == "shift_traffic":
            break
        w.apply(d, w._execute(d, d.pending[0]))
    cmd = d.pending[0]
    executor = Executor(svc.ws, svc.ports, svc.store, w.clock)
    first = executor.run(d, cmd)
    # someone changes the endpoint between a crash and the run again: the same change is made
    serving = svc.ports.serving
    assert isinstance(serving, RecordingServing)
    live = serving.get_endpoint("churn-scorer", "local")
    assert live is not None
    extra = Variant(
        name="other-v1", model="other", version=1, library=live.variants[0].library,
        artifact=live.variants[0].artifact, weight=0,
    )  # fmt: skip
    serving.apply(live.model_copy(update={"variants": [*live.variants, extra]}))
    again = executor.run(d, cmd)
    assert getattr(first, "result", None) == getattr(again, "result", None)
    assert weights(svc) == {"churn-v1": 50.0, "churn-v2": 50.0}
    w.apply(d, w._execute(d, cmd))
    # and someone changes it again during the bake
    live = serving.get_endpoint("churn-scorer", "local")
    assert live is not None
    serving.apply(live.model_copy(update={"variants": [*live.variants, extra]}))

    final = svc.run(svc.abort(d.id))
    assert final.state is DeploymentState.ABORTED
    # this deployment's own variant and weights went back; the other variant stays
    assert weights(svc) == {"churn-v1": 100.0, "other-v1": 0.0}


# ---------------------------------------------------------------- 4. exact names


def test_retiring_b_leaves_the_alarms_of_a_b_alone(
    make_service: MakeService, model_files: Files
) -> None:
    svc = make_service()
    for name in ("a-b", "b"):
        register(svc, model_files, name=name)
    monitor = svc.ports.monitor
    assert isinstance(monitor, RecordingMonitor)
    theirs = monitor.ensure_alarms("e", "local", "a-b-v1", Alarms())
    mine = monitor.ensure_alarms("e", "local", "b-v1", Alarms())
    assert alarm_name("e", "b-v1", "error_rate") in mine
    sites = {s.location for s in svc.usage("b") if s.kind.value == "monitor"}
    assert sites == set(mine)
    assert svc.run(svc.retire("b", "1")).state is DeploymentState.SUCCEEDED
    assert [a.name for a in monitor.alarms()] == sorted(theirs)


# ---------------------------------------------------------------- 7. waiting


def test_wait_times_out_loudly_and_takes_over_from_a_worker_that_stopped(
    make_service: MakeService, model_files: Files, tmp_path: Path
) -> None:
    svc = make_service()
    register(svc, model_files)
    d = svc.deploy("churn", "1", file=deploy_file(tmp_path, endpoint="e", strategy=BAKED))
    svc.store.heartbeat("elsewhere:1:abc", time.time())  # a worker that is alive, and busy
    with pytest.raises(WaitTimeout, match=f"timed out after 0.5s: {d.id} is still queued"):
        svc.wait(d.id, timeout_s=0.5, poll_s=0.05)
    svc.store.heartbeat("elsewhere:1:abc", time.time() - 3600)  # it stopped heartbeating
    quick = svc.deploy("churn", "1", "quick")
    assert svc.wait(quick.id, timeout_s=120, poll_s=0.05).state is DeploymentState.SUCCEEDED


# ---------------------------------------------------------------- 9. identity


def test_force_is_an_admins_right_and_names_are_printable(
    make_service: MakeService, model_files: Files
) -> None:
    svc = make_service()
    register(svc, model_files)
    svc.run(svc.deploy("churn", "1", "churn-scorer"))
    with pytest.raises(PermissionDenied, match=r"policy\.admins"):
        make_service("root").retire("churn", "1", force=True)
    for name in ("bob\nmallory", "bob\x1b[2J", "", " bob"):
        with pytest.raises(BadRequest, match="user name"):
            make_service(name)
    assert [r.action for r in svc.audit_log()][:1] == ["deploy"]
