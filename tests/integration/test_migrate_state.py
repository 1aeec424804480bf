"""`mmm migrate-state`: a workspace's SQLite state copied into DynamoDB (moto's server): the
deployments, history, feed and cursors read back the same, a deployment half way goes on
from the copy, its locks still hold, and a copy is never made over other state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.bootstrap import load_workspace
from core.domain import DeploymentState
from core.service import BadRequest, Service
from core.store import DeploymentQuery, StoreError
from core.store.dynamodb import DynamoStore
from core.store.migrate import copy_state
from core.store.sqlite import SqliteStore
from tests.support.models import train_sklearn_regressor, write_golden
from tests.support.moto_server import DUMMY_ENV, REGION, Aws, aws  # noqa: F401
from tests.support.worker_process import fake_ports

ROOT = Path(__file__).resolve().parents[2]
TABLE = "mmm-state"


def sqlite_workspace(tmp_path: Path) -> Service:
    """churn v1 served on churn-live; v2 waiting at a gate on churn-live's neighbour."""
    home = tmp_path / "ws"
    home.mkdir()
    settings = {"worker": {"poll_s": 0.05, "backoff_s": 0}, "policy": {"allow_self_approval": True}}
    (home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    svc = Service(load_workspace(home), SqliteStore(home / "state.db"), fake_ports(home), "alice")
    for seed in (0, 1):
        artifact = train_sklearn_regressor(tmp_path / f"m{seed}", seed=seed)
        golden = write_golden(artifact, "sklearn", tmp_path / f"m{seed}")  # type: ignore[arg-type]
        svc.register("churn", artifact, "sklearn", golden)
    assert svc.run(svc.deploy("churn", "1", "churn-live")).state is DeploymentState.SUCCEEDED
    gated = tmp_path / "gated.yaml"
    gated.write_text(yaml.safe_dump({"gates": ["before_rollout"]}))
    waiting = svc.run(svc.deploy("churn", "2", "churn-next", file=gated))
    assert waiting.state is DeploymentState.WAITING_APPROVAL
    svc.store.set_cursor("slack", 3)
    svc.store.set_delivery("slack", waiting.id, {"channel": "C1", "ts": "1.5"})
    return svc


def to_dynamodb(svc: Service, aws: Aws) -> Path:  # noqa: F811
    settings: dict[str, Any] = yaml.safe_load((svc.ws.home / "mmm.yaml").read_text())
    settings["backends"] = {"store": "dynamodb"}
    settings["aws"] = {"region": REGION, "endpoint_url": aws.url, "table": TABLE}
    (svc.ws.home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    return svc.ws.home


def test_the_copy_reads_back_the_same_and_goes_on(tmp_path: Path, aws: Aws) -> None:  # noqa: F811
    svc = sqlite_workspace(tmp_path)
    sqlite = svc.store
    assert isinstance(sqlite, SqliteStore)
    dynamo = DynamoStore(aws.clients, TABLE)
    copied = copy_state(sqlite, dynamo)
    assert (copied.deployments, copied.active, copied.locks) == (2, 1, 2)

    every = DeploymentQuery(limit=1000)
    assert [d.model_dump() for d in dynamo.deployments(every)] == [
        d.model_dump() for d in sqlite.deployments(every)
    ]
    assert dynamo.audit_log() == sqlite.audit_log()
    assert dynamo.changes_since(0) == sqlite.changes_since(0)
    assert dynamo.last_change() == sqlite.last_change()
    assert dynamo.cursor("slack") == 3
    waiting = next(d for d in sqlite.deployments(every) if d.active)
    assert dynamo.delivery("slack", waiting.id) == {"channel": "C1", "ts": "1.5"}
    assert dynamo.usage_index() == sqlite.usage_index()
    for entry in waiting.journal:
        assert dynamo.command_result(entry.key) == sqlite.command_result(entry.key)

    # the waiting deployment goes on from the copy: its locks hold until it ends
    on_dynamo = Service(svc.ws, dynamo, svc.ports, "bob")
    with pytest.raises(BadRequest, match=f"is busy: {waiting.id}"):
        on_dynamo.deploy("churn", "1", "churn-next")
    done = on_dynamo.run(on_dynamo.approve(waiting.id))
    assert done.state is DeploymentState.SUCCEEDED
    # new history is numbered after the copied one
    assert dynamo.changes_since(0)[: copied.feed_entries] == sqlite.changes_since(0)
    assert min(e.seq for e in dynamo.changes_since(copied.last_seq)) > copied.last_seq
    assert on_dynamo.run(on_dynamo.deploy("churn", "1", "churn-next")).active is False

    # never over other state: a second copy is refused, and so is a table in use
    with pytest.raises(StoreError, match="holds a finished copy of"):
        copy_state(sqlite, dynamo)
    used = DynamoStore(aws.clients, "used")
    used.audit(sqlite.audit_log()[0])
    with pytest.raises(StoreError, match="table used holds mmm state already"):
        copy_state(sqlite, used)


def test_an_interrupted_copy_is_made_again(
    tmp_path: Path,
    aws: Aws,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    svc = sqlite_workspace(tmp_path)
    assert isinstance(svc.store, SqliteStore)
    dynamo = DynamoStore(aws.clients, TABLE)

    def interrupted(source: str, seq: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(dynamo, "finish_copy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        copy_state(svc.store, dynamo)
    monkeypatch.undo()
    with pytest.raises(StoreError, match="holds the copy under way of"):  # not another's
        copy_state(SqliteStore(tmp_path / "other.db"), dynamo)
    copied = copy_state(svc.store, dynamo)
    assert copied.deployments == 2 and dynamo.count(DeploymentQuery()) == 2


@pytest.mark.slow  # four processes; the copy itself is tested above
def test_the_command(tmp_path: Path, aws: Aws) -> None:  # noqa: F811
    svc = sqlite_workspace(tmp_path)
    env = {**os.environ, **DUMMY_ENV}
    mmm = [sys.executable, "-m", "mmm_cli.main", "--home", str(svc.ws.home)]
    refused = subprocess.run(
        [*mmm, "migrate-state"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert refused.returncode == 2 and "set backends.store: dynamodb" in refused.stderr
    home = to_dynamodb(svc, aws)
    done = subprocess.run(
        [*mmm, "migrate-state"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("copied 2 deployments (1 active, 2 locks)")
    again = subprocess.run(
        [*mmm, "migrate-state"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    assert f"holds a finished copy of {(home / 'state.db').resolve()}" in again.stderr
    status = subprocess.run(
        [*mmm, "status", "--json"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    assert len(yaml.safe_load(status.stdout)) == 2  # now read from DynamoDB
