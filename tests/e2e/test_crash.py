"""A worker killed with SIGKILL at each stage boundary resumes to the same end, doing nothing twice."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from core.adapters.local.registry import LocalRegistry
from tests.e2e.conftest import MMM, Workspace, start_replayed_shadow

pytestmark = pytest.mark.slow  # the crash matrix: `make test-slow`

# (step, point): the first step of every stage, plus both sides of the result log.
CASES = [
    ("validate", "after_run"),
    ("open_change", "after_run"),
    ("run_checks", "after_run"),
    ("merge_change", "after_run"),
    ("merge_change", "after_log"),
    ("copy_artifact", "after_run"),
    ("mark_staging", "after_run"),
    ("mark_staging", "after_log"),
    ("create_variant", "after_run"),
    ("create_alarms", "after_run"),
    ("shift:100", "after_run"),
    ("drain_old", "after_run"),
    ("mark_production", "after_run"),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace with churn v1 registered and a short lease, copied for every case."""
    root = tmp_path_factory.mktemp("crash-template")
    ws = Workspace(home=root / "ws", models=root / "models")
    ws.ok("init")
    settings = yaml.safe_load((ws.home / "mmm.yaml").read_text())
    settings["worker"] = {"lease_s": 1, "poll_s": 0.2}
    (ws.home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    ws.register()
    return ws


def git(ws: Workspace, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ws.home / "repo"), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize(("step", "point"), CASES, ids=[f"{s}-{p}" for s, p in CASES])
def test_killed_worker_resumes_without_doing_anything_twice(
    template: Workspace, tmp_path: Path, step: str, point: str
) -> None:
    ws = Workspace(home=tmp_path / "ws", models=template.models)
    shutil.copytree(template.home, ws.home)
    dep = ws.ok("deploy", "churn", "1", "--endpoint", "churn-scorer", "--detach").out.strip()

    env = ws.env("worker")
    env["MMM_CRASH_AT"] = f"{step}:{point}"
    crashed = subprocess.run(
        [str(MMM), "worker", "--once"], env=env, capture_output=True, text=True, timeout=240
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    mid = ws.ok("status", dep, "--json").json()
    assert mid["state"] == "running"

    time.sleep(1.2)  # the dead worker's lease runs out
    ws.ok("worker", "--once", user="worker")
    d = ws.ok("status", dep, "--json").json()
    assert d["state"] == "succeeded", d["error"]

    # one change: one branch commit and one merge on main
    merges = [line for line in git(ws, "log", "--merges", "--format=%H %s", "main").splitlines()]
    assert len(merges) == 1 and dep in git(ws, "log", "-1", "--format=%B", "main")
    assert len(git(ws, "rev-list", "--no-merges", "main").split()) == 2  # initial + the change
    # one artifact, once
    production = sorted(p.name for p in (ws.home / "buckets/production").rglob("*") if p.is_file())
    assert production == ["model.joblib"]
    # each registry transition exactly once
    history = LocalRegistry(ws.home / "registry").history("churn", "1")
    assert [(h["from"], h["to"]) for h in history] == [
        ("registered", "staging"),
        ("staging", "production"),
    ]
    # the same end as a run without a crash
    usage = {(s["kind"], s["location"]) for s in ws.ok("usage", "churn", "--json").json()}
    assert usage == {
        ("endpoint", "churn-scorer"),
        ("artifact", "local://production/models/churn/1/model.joblib"),
        ("monitor", "mmm/churn-scorer/churn-v1/error-rate"),
        ("monitor", "mmm/churn-scorer/churn-v1/p99-latency"),
        ("code", "deploy/churn-scorer/churn.yaml"),
        ("registry", "local:churn/1"),
    }
    steps = [e["step"] for e in d["events"] if e["type"] == "step_succeeded"]
    assert len(steps) == len(set(steps))  # no step recorded twice


@pytest.mark.parametrize("step", ["start_shadow", "collect", "analyze"])
def test_killed_during_a_shadow_test_resumes_with_the_same_pairs(
    template: Workspace, tmp_path: Path, step: str
) -> None:
    ws = Workspace(home=tmp_path / "ws", models=template.models)
    shutil.copytree(template.home, ws.home)
    dep = start_replayed_shadow(ws, tmp_path, rows=800)
    env = ws.env("worker")
    env["MMM_CRASH_AT"] = f"{step}:after_run"
    crashed = subprocess.run(
        [str(MMM), "worker", "--once"], env=env, capture_output=True, text=True, timeout=240
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    time.sleep(1.2)
    ws.ok("worker", "--once", user="worker")
    d = ws.ok("status", dep, "--json").json()
    assert d["state"] == "succeeded", d["error"]
    assert d["analysis"]["samples"] == 800  # replayed once, not twice
    captured = list((ws.home / "buckets/captures/churn-scorer/churn-v2").glob("*.jsonl"))
    assert sum(len(p.read_text().splitlines()) for p in captured) == 800
