"""End to end through the `mmm` command: deploy, four-eyes, abort, retire, bad input."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Workspace
from tests.support.models import write_broken_artifact


def git(ws: Workspace, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ws.home / "repo"), *args], capture_output=True, text=True, check=True
    ).stdout


def deploy_file(tmp: Path, **spec: object) -> Path:
    path = tmp / "deploy.yaml"
    path.write_text(yaml.safe_dump({"endpoint": "churn-scorer", **spec}))
    return path


def test_deploy_merges_generated_code_copies_the_artifact_and_serves(ws: Workspace) -> None:
    assert ws.register() == 1
    res = ws.ok("deploy", "churn", "1", "--endpoint", "churn-scorer", "--json")
    d = res.json()
    assert d["state"] == "succeeded" and d["stage"] == "done" and d["requested_by"] == "alice"
    assert {"validate", "open_change", "run_checks", "merge_change", "drain_old"} <= {
        e.get("step") for e in d["events"]
    }
    # the merged commit on main carries the generated client, IaC and golden test
    log = git(ws, "log", "--format=%s%n%b", "main")
    assert f"Mmm-Change: {d['id']}" in log
    files = git(ws, "ls-tree", "-r", "--name-only", "main").split()
    assert "deploy/churn-scorer/churn.yaml" in files
    assert "mmm/endpoints/churn_scorer.py" in files
    assert any(f.startswith("tests/mmm/") for f in files)
    iac = yaml.safe_load(git(ws, "show", "main:deploy/churn-scorer/churn.yaml"))
    assert iac["model"]["version"] == 1
    # the artifact is in the production bucket, the registry says production
    assert (ws.home / "buckets/production/models/churn/1/model.joblib").is_file()
    versions = ws.ok("models", "--json").json()[0]["versions"]
    assert versions[0]["status"] == "production"
    assert ws.weights() == {"churn-v1": 100.0}
    kinds = {s["kind"] for s in ws.ok("usage", "churn", "--json").json()}
    assert kinds == {"endpoint", "artifact", "monitor", "code", "registry"}


# `make test` keeps the demo's refusal through the CLI and the policy in process
# (tests/integration/test_worker_and_policy.py, tests/unit/test_policy.py)
@pytest.mark.slow
def test_four_eyes_refuses_the_requester_and_accepts_another_user(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.register()
    f = deploy_file(tmp_path, gates=["before_rollout"])
    d = ws.ok("deploy", "churn", "1", "-f", str(f), "--json").json()
    assert d["state"] == "waiting_approval" and d["waiting_at"] == "before_rollout"
    before = ws.snapshot()
    own = ws.run("approve", d["id"])
    assert own.code == 3
    assert own.err.count("\n") == 1 and "four-eyes" in own.err
    after = ws.snapshot()
    assert after["audit"][0]["action"] == "approve_refused"  # refusals are audited...
    assert {**after, "audit": None} == {**before, "audit": None}  # ...and change nothing else
    ok = ws.ok("approve", d["id"], "--json", user="bob").json()
    assert ok["state"] == "succeeded"
    assert [(a["by"], a["gate"]) for a in ok["approvals"]] == [("bob", "before_rollout")]
    audit = ws.ok("audit", d["id"], "--json").json()
    assert [(r["actor"], r["action"]) for r in audit][:2] == [
        ("bob", "approve"),
        ("alice", "approve_refused"),
    ]


@pytest.mark.slow  # aborts in process: test_worker_and_policy.py, test_preview.py, test_aws_pipeline.py
def test_abort_mid_rollout_undoes_everything(ws: Workspace, tmp_path: Path) -> None:
    ws.register(seed=0)
    ws.ok("deploy", "churn", "1", "--endpoint", "churn-scorer")
    main_before = git(ws, "rev-parse", "main").strip()
    iac_before = git(ws, "show", "main:deploy/churn-scorer/churn.yaml")
    ws.register(seed=1)
    f = deploy_file(
        tmp_path,
        gates=["between_steps"],
        strategy={"kind": "blue-green", "steps": [50, 100], "bake_s": 0},
    )
    d = ws.ok("deploy", "churn", "2", "-f", str(f), "--json").json()
    assert d["state"] == "waiting_approval"
    assert ws.weights() == {"churn-v1": 50.0, "churn-v2": 50.0}
    assert (ws.home / "buckets/production/models/churn/2/model.joblib").is_file()
    assert git(ws, "rev-parse", "main").strip() != main_before

    res = ws.ok("abort", d["id"], "--reason", "changed my mind", "--json", user="bob")
    aborted = res.json()
    assert aborted["state"] == "aborted"
    assert ws.weights() == {"churn-v1": 100.0}
    assert not (ws.home / "buckets/production/models/churn/2").exists()
    assert git(ws, "show", "main:deploy/churn-scorer/churn.yaml") == iac_before
    usage_v2 = ws.ok("usage", "churn", "--version", "2", "--json").json()
    assert usage_v2 == []
    statuses = {v["version"]: v["status"] for v in ws.ok("models", "--json").json()[0]["versions"]}
    assert statuses == {1: "production", 2: "registered"}
    assert any(e["type"] == "abort_requested" and e["by"] == "bob" for e in aborted["events"])


@pytest.mark.slow  # long through the CLI; `make test` keeps the in-process tests of it
def test_retire_leaves_no_usage_site(ws: Workspace) -> None:
    ws.register(seed=0)
    ws.ok("deploy", "churn", "1", "--endpoint", "churn-scorer")
    ws.register(seed=1)
    ws.ok("deploy", "churn", "2", "--endpoint", "churn-scorer")
    assert ws.weights() == {"churn-v2": 100.0}
    statuses = {v["version"]: v["status"] for v in ws.ok("models", "--json").json()[0]["versions"]}
    assert statuses == {1: "archived", 2: "production"}  # v1 was replaced everywhere
    kinds = {s["kind"] for s in ws.ok("usage", "churn", "--version", "1", "--json").json()}
    assert kinds == {"artifact", "monitor"}  # what retirement still has to remove

    r1 = ws.ok("retire", "churn", "1", "--json").json()
    assert r1["state"] == "succeeded" and r1["strategy"] == "retire"
    assert ws.ok("usage", "churn", "--version", "1", "--json").json() == []
    before = ws.snapshot()
    again = ws.run("deploy", "churn", "1", "--endpoint", "churn-scorer")
    assert again.code == 2 and again.err.count("\n") == 1
    assert "churn v1 has been retired: register its files again" in again.err
    assert ws.snapshot() == before

    live = ws.run("retire", "churn", "2")
    assert live.code == 2 and "live traffic" in live.err and live.err.count("\n") == 1
    forced = ws.run("retire", "churn", "--force")
    assert forced.code == 3 and "policy.admins" in forced.err  # no admin named yet
    settings = yaml.safe_load((ws.home / "mmm.yaml").read_text())
    settings["policy"]["admins"] = ["alice"]
    (ws.home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    r2 = ws.ok("retire", "churn", "--force", "--json").json()
    assert r2["state"] == "succeeded"
    assert ws.ok("usage", "churn", "--json").json() == []
    assert ws.weights() == {}
    files = git(ws, "ls-tree", "-r", "--name-only", "main").split()
    assert not any("churn" in f for f in files)
    statuses = {v["status"] for v in ws.ok("models", "--json").json()[0]["versions"]}
    assert statuses == {"retired"}


# ---------------------------------------------------------------- bad input


@pytest.mark.slow  # long through the CLI; `make test` keeps the in-process tests of it
def test_unknown_model_or_version(ws: Workspace) -> None:
    ws.register()
    before = ws.snapshot()
    for args, message in [
        (("deploy", "nope", "1", "--endpoint", "e"), "model 'nope' is not registered"),
        (("deploy", "churn", "7", "--endpoint", "e"), "has no version 7"),
        (("retire", "nope"), "not registered"),
        (("usage", "nope"), "not registered"),
        (("approve", "dep-missing"), "no deployment"),
        (
            ("deploy", "churn", "one", "--endpoint", "e"),
            "has no version one",
        ),  # the registry's name
        (("deploy", "churn", "1/../2", "--endpoint", "e"), "version '1/../2': use letters"),
        (("deploy", "churn", "1", "--strategy", "canary", "--endpoint", "e"), "--strategy canary"),
    ]:
        res = ws.run(*args)
        assert res.code == 2, res.err
        assert message in res.err and res.err.count("\n") == 1 and "Traceback" not in res.err
    assert ws.snapshot() == before


@pytest.mark.parametrize(
    ("text", "message"),
    # One case through the command in `make test`; the rest of the file rules are checked
    # in-process there (tests/unit/test_spec*.py), through the command in `make test-slow`.
    [
        ("endpoint: churn-scorer\nenv: {DB_PASSWORD: hunter2}\n", "looks like a secret"),
        *(
            pytest.param(text, message, marks=pytest.mark.slow)
            for text, message in [
                ("endpoint: [unclosed\n", "not valid YAML"),
                (
                    "endpoint: churn-scorer\nstrategy: {kind: blue-green, stepz: [10, 100]}\n",
                    "strategy.stepz: unknown key",
                ),
                (
                    "endpoint: churn-scorer\nstrategy: {kind: blue-green, steps: [50, 20]}\n",
                    "steps",
                ),
                ("endpoint: churn-scorer\ngates: [before_lunch]\n", "gates.0"),
            ]
        ),
    ],
)
def test_bad_deployment_file(ws: Workspace, tmp_path: Path, text: str, message: str) -> None:
    ws.register()
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    before = ws.snapshot()
    res = ws.run("deploy", "churn", "1", "-f", str(f))
    assert res.code == 2
    assert str(f) in res.err and message in res.err, res.err
    assert res.err.count("\n") == 1
    assert "hunter2" not in res.err
    assert ws.snapshot() == before


@pytest.mark.slow  # golden files are checked in-process in tests/unit/test_runtime.py
def test_golden_file_with_bad_lines_is_refused(ws: Workspace, tmp_path: Path) -> None:
    from core.domain import Library
    from tests.support.models import train_sklearn_regressor, write_golden

    artifact = train_sklearn_regressor(tmp_path)
    golden = write_golden(artifact, Library.SKLEARN, tmp_path)
    lines = golden.read_text().splitlines()
    lines[2] = '{"input": [1, 2], "outptu": 3}'
    golden.write_text("\n".join(lines) + "\n")
    before = ws.snapshot()
    res = ws.run(
        "register",
        "churn",
        "--artifact",
        str(artifact),
        "--library",
        "sklearn",
        "--golden",
        str(golden),
    )
    assert res.code == 2 and "line 3" in res.err and res.err.count("\n") == 1
    assert ws.snapshot() == before


@pytest.mark.slow  # unloadable files: tests/unit/test_runtime.py, tests/integration/test_isolation.py
def test_artifact_that_does_not_load_is_refused(ws: Workspace, tmp_path: Path) -> None:
    broken = write_broken_artifact(tmp_path)
    before = ws.snapshot()
    res = ws.run("register", "churn", "--artifact", str(broken), "--library", "sklearn")
    assert res.code == 2 and "not a loadable sklearn model" in res.err
    assert res.err.count("\n") == 1
    bad_lib = ws.run("register", "churn", "--artifact", str(broken), "--library", "torch")
    assert bad_lib.code == 2 and "--library torch" in bad_lib.err
    assert ws.snapshot() == before


@pytest.mark.slow  # long through the CLI; `make test` keeps the in-process tests of it
def test_second_deploy_to_a_busy_endpoint_is_refused(ws: Workspace, tmp_path: Path) -> None:
    ws.register(seed=0)
    ws.register(seed=1)
    f = deploy_file(tmp_path, gates=["before_rollout"])
    first = ws.ok("deploy", "churn", "1", "-f", str(f), "--json").json()
    before = ws.snapshot()
    res = ws.run("deploy", "churn", "2", "--endpoint", "churn-scorer", user="bob")
    assert res.code == 2
    assert first["id"] in res.err and "alice" in res.err and res.err.count("\n") == 1
    assert ws.snapshot() == before


@pytest.mark.slow  # the dry run in-process: tests/integration/test_worker_and_policy.py
def test_dry_run_prints_the_plan_and_changes_nothing(ws: Workspace) -> None:
    ws.register()
    before = ws.snapshot()
    res = ws.ok(
        "deploy",
        "churn",
        "1",
        "--endpoint",
        "churn-scorer",
        "--strategy",
        "blue-green",
        "--dry-run",
        "--json",
    )
    plan = [s["step"] for s in res.json()["plan"]]
    assert plan[:3] == ["validate", "open_change", "run_checks"] and "shift:10" in plan
    assert ws.snapshot() == before
