"""Many workers on one DynamoDB store (moto's server over HTTP): three worker processes
advance 200 deployments to their end while one of them is SIGKILLed half way through its
share. Every deployment ends as it should, no command ran twice but the one the killed
worker was running, and none is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.bootstrap import build_store, load_workspace
from core.domain import DeploymentState, Library
from core.service import Service
from core.store import DeploymentQuery
from tests.support.models import train_sklearn_regressor, write_golden
from tests.support.moto_server import DUMMY_ENV, REGION, Aws, aws  # noqa: F401
from tests.support.worker_process import fake_ports, spawn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

MODELS, VERSIONS = 20, 10  # 200 deployments, each of its own version to its own endpoint
KILL_AT = "create_variant:after_run@25"  # the killed worker's 25th create_variant


def workspace(home: Path, aws: Aws) -> Service:  # noqa: F811
    home.mkdir()
    settings = {
        "backends": {"store": "dynamodb"},
        "aws": {"region": REGION, "endpoint_url": aws.url, "table": "mmm-state"},
        "worker": {"lease_s": 2, "poll_s": 0.05, "backoff_s": 0},
    }
    (home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    ws = load_workspace(home)
    return Service(ws, build_store(ws), fake_ports(home), "alice")


def start_worker(home: Path, executions: Path, crash_at: str = "") -> subprocess.Popen[str]:
    env = {**os.environ, **DUMMY_ENV, "MMM_TEST_EXECUTIONS": str(executions)}
    if crash_at:
        env["MMM_CRASH_AT"] = crash_at
    return spawn(home, env=env)


def test_three_workers_share_200_deployments_and_one_dies_half_way(
    tmp_path: Path,
    aws: Aws,  # noqa: F811
) -> None:
    home = tmp_path / "ws"
    svc = workspace(home, aws)
    artifact = train_sklearn_regressor(tmp_path / "models")
    golden = write_golden(artifact, Library.SKLEARN, tmp_path / "models")
    ids = []
    for m in range(MODELS):
        for _ in range(VERSIONS):
            # straight into the registry: the deployment's validate step checks the files
            svc.ports.registry.register(f"m{m:02d}", artifact, Library.SKLEARN, golden, None, "t")
    for m in range(MODELS):
        for v in range(1, VERSIONS + 1):
            ids.append(svc.deploy(f"m{m:02d}", str(v), f"ep-{m:02d}-{v:02d}").id)
    assert len(set(ids)) == 200

    executions = tmp_path / "executions.jsonl"
    doomed = start_worker(home, executions, KILL_AT)
    others = [start_worker(home, executions) for _ in range(2)]
    doomed_out, _ = doomed.communicate(timeout=1800)
    assert doomed.returncode == -signal.SIGKILL, doomed_out
    for worker in others:
        out, _ = worker.communicate(timeout=1800)
        assert worker.returncode == 0, out

    store = svc.store
    ended = store.deployments(DeploymentQuery(limit=1000))
    assert len(ended) == 200
    assert Counter(d.state for d in ended) == {DeploymentState.SUCCEEDED: 200}
    assert store.deployments(DeploymentQuery(active_only=True)) == []  # none stuck
    assert store.runnable(float("inf")) == []

    runs: list[dict[str, Any]] = [json.loads(line) for line in executions.read_text().splitlines()]
    by_pid = Counter(r["pid"] for r in runs)
    assert len(by_pid) == 3 and all(by_pid.values())  # all three took a share
    twice = [key for key, n in Counter(r["key"] for r in runs).items() if n > 1]
    # only the command the killed worker had run, but not logged, ran again (its handler is
    # idempotent: the fakes hold one endpoint per deployment, below)
    assert len(twice) <= 1, twice
    for key in twice:
        pids = [r["pid"] for r in runs if r["key"] == key]
        assert pids[0] == doomed.pid and doomed.pid not in pids[1:], (key, pids)
        assert key.endswith("/create_variant")
    # every command the deployments went through was logged once, with its result
    for d in ended:
        for entry in d.journal:
            assert store.command_result(entry.key) is not None, entry.key
    serving = svc.ports.serving
    endpoints = serving.endpoints()
    assert len(endpoints) == 200
    assert all([v.weight for v in e.variants] == [100.0] for e in endpoints)
    largest = max(len(store._db.get_item(  # type: ignore[attr-defined]
        TableName="mmm-state", Key={"pk": {"S": f"dep#{i}"}, "sk": {"S": "-"}}
    )["Item"]["body"]["B"]) for i in ids)  # fmt: skip
    print(f"largest deployment item body: {largest} bytes")
