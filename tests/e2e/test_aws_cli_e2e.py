"""End to end through the `mmm` command on S3, SageMaker and CloudWatch (a moto server over
HTTP in the test process, extended by tests.support.moto_sagemaker; dummy credentials),
with the embedded registry and the local code host, whose golden tests read the artifact
from S3. All-at-once; blue-green with a gate passed by a second user; an alarm in ALARM
during a bake rolling back; abort mid-rollout; retirement. After the abort and after the
retirement nothing mmm made is left, and what it did not make is untouched."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from tests.e2e.conftest import MMM, Workspace
from tests.support.moto_server import (  # noqa: F401
    IMAGES,
    REGION,
    ROLE_ARN,
    Aws,
    aws,
    foreign_things,
    inventory,
)

pytestmark = pytest.mark.slow

ENDPOINT = "churn-scorer"
THEIRS = f"mmm-production-{REGION}/theirs/notes.txt"  # in mmm's bucket, not made by mmm


@pytest.fixture
def cloud(tmp_path: Path, aws: Aws) -> Workspace:  # noqa: F811
    w = Workspace(home=tmp_path / "ws", models=tmp_path / "models")
    w.ok("init")
    settings = yaml.safe_load((w.home / "mmm.yaml").read_text())
    settings["backends"].update(artifacts="s3", serving="sagemaker", monitor="cloudwatch")
    settings["aws"].update(endpoint_url=aws.url, role_arn=ROLE_ARN, images=IMAGES)
    settings["worker"] = {"poll_s": 0.1, "backoff_s": 0.1, "lease_s": 30}
    settings["policy"]["admins"] = ["alice"]
    settings["defaults"]["regions"] = [REGION]
    (w.home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    return w


def weights(aws: Aws) -> dict[str, float]:  # noqa: F811
    """The endpoint's variants and weights as SageMaker reports them."""
    sm: Any = aws.client("sagemaker")
    described = sm.describe_endpoint(EndpointName=ENDPOINT)
    return {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]}


def spec_file(tmp_path: Path, name: str, **spec: Any) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"endpoint": ENDPOINT, **spec}))
    return str(path)


def wait(ws: Workspace, dep: str) -> dict[str, Any]:
    """The deployment once terminal or waiting at a gate (the worker of `mmm up` runs it);
    `mmm status --wait` exits non-zero when it ended otherwise than succeeded."""
    res = ws.run("status", dep, "--wait", "--timeout", "180", "--json")
    assert res.out, res.err
    doc: dict[str, Any] = res.json()
    return doc


def made_by_mmm(aws: Aws) -> dict[str, list[str]]:  # noqa: F811
    """What mmm made: the inventory without the foreign resources."""
    left = inventory(aws)
    foreign = {"their-model", "their-config", "their-endpoint", "their-alarm", THEIRS}
    return {
        kind: [n for n in names if n not in foreign and not n.startswith("someone-else/")]
        for kind, names in left.items()
    }


def assert_foreign_untouched(aws: Aws) -> None:  # noqa: F811
    left = inventory(aws)
    assert "their-model" in left["models"] and "their-config" in left["configs"]
    assert "their-endpoint" in left["endpoints"] and "their-alarm" in left["alarms"]
    assert {THEIRS, "someone-else/models/churn/1/model.joblib"} <= set(left["objects"])
    sm: Any = aws.client("sagemaker")
    assert sm.describe_endpoint(EndpointName="their-endpoint")["EndpointConfigName"] == (
        "their-config"
    )


def start_up(ws: Workspace, log: Path, sink: IO[str]) -> subprocess.Popen[bytes]:
    """`mmm up` as the worker (its output in `log`), once it says where it listens."""
    proc = subprocess.Popen(
        [str(MMM), "up", "--port", "0"], env=ws.env("alice"), stdout=sink, stderr=sink
    )
    for _ in range(600):
        if "health and metrics on " in log.read_text():
            return proc
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError(log.read_text())


def test_mmm_on_s3_sagemaker_and_cloudwatch(cloud: Workspace, aws: Aws, tmp_path: Path) -> None:  # noqa: F811
    ws = cloud
    foreign_things(aws)
    s3: Any = aws.client("s3")
    s3.create_bucket(Bucket=f"mmm-production-{REGION}")
    s3.put_object(Bucket=f"mmm-production-{REGION}", Key="theirs/notes.txt", Body=b"keep")
    for seed in (0, 1, 2):
        ws.register(seed=seed)
    before_any = made_by_mmm(aws)
    assert before_any["models"] == before_any["alarms"] == before_any["endpoints"] == []

    # all-at-once, run inline by `mmm deploy`; the golden test read the artifact from S3
    d1 = ws.ok("deploy", "churn", "1", "--endpoint", ENDPOINT, "--json").json()
    assert d1["state"] == "succeeded", d1["error"]
    checks = [e for e in d1["events"] if e.get("step") == "run_checks"]
    assert any("1 passed" in json.dumps(e) for e in checks), checks
    assert weights(aws) == {"churn-v1": 100.0}
    made = made_by_mmm(aws)
    assert f"mmm-production-{REGION}/models/churn/1/model.joblib" in made["objects"]
    assert made["alarms"] == [
        f"mmm/{ENDPOINT}/churn-v1/error-rate",
        f"mmm/{ENDPOINT}/churn-v1/p99-latency",
    ]
    iac = yaml.safe_load(
        subprocess.run(
            ["git", "-C", str(ws.home / "repo"), "show", f"main:deploy/{ENDPOINT}/churn.yaml"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert iac["model"]["artifact_uri"].startswith(f"s3://mmm-staging-{REGION}/models/churn/1/")

    # blue-green with a gate between steps: the requester may not pass it, a second user does
    bg = spec_file(
        tmp_path,
        "bg",
        gates=["between_steps"],
        strategy={"kind": "blue-green", "steps": [25, 100], "bake_s": 0},
    )
    d2 = ws.ok("deploy", "churn", "2", "-f", bg, "--json").json()
    assert d2["state"] == "waiting_approval", d2["error"]
    assert weights(aws) == {"churn-v1": 75.0, "churn-v2": 25.0}
    refused = ws.run("approve", d2["id"])
    assert refused.code == 3 and "four-eyes" in refused.err
    d2 = ws.ok("approve", d2["id"], "--json", user="bob").json()
    assert d2["state"] == "succeeded", d2["error"]
    assert [(a["by"], a["gate"]) for a in d2["approvals"]] == [("bob", "between_steps")]
    assert weights(aws) == {"churn-v2": 100.0}
    settled = inventory(aws)

    log = tmp_path / "up.log"
    with log.open("w") as sink:
        up = start_up(ws, log, sink)
        try:
            run_with_the_worker(ws, aws, tmp_path, bg, settled)
        finally:
            up.terminate()
            assert up.wait(timeout=60) == 0, log.read_text()

    # retirement removes every version from every place; v2 takes traffic: --force
    refused = ws.run("retire", "churn")
    assert refused.code != 0
    retired = ws.ok("retire", "churn", "--force", "--json").json()
    assert retired["state"] == "succeeded", retired["error"]
    assert made_by_mmm(aws) == {
        "objects": [],
        "models": [],
        "configs": [],
        "endpoints": [],
        "alarms": [],
        "dashboards": [],
    }
    assert_foreign_untouched(aws)
    assert ws.ok("usage", "churn", "--json").json() == []


def run_with_the_worker(
    ws: Workspace,
    aws: Aws,  # noqa: F811
    tmp_path: Path,
    bg: str,
    settled: dict[str, list[str]],
) -> None:
    """v3 with `mmm up` as the worker: rolled back by an alarm, then aborted mid-rollout."""
    # an alarm in ALARM during the bake rolls the deployment back (the worker runs it)
    baked = spec_file(
        tmp_path, "baked", strategy={"kind": "blue-green", "steps": [50, 100], "bake_s": 60}
    )
    d3 = ws.ok("deploy", "churn", "3", "-f", baked, "--detach").out.strip()
    cw: Any = aws.client("cloudwatch")
    alarm = f"mmm/{ENDPOINT}/churn-v3/error-rate"
    for _ in range(1200):  # the candidate's alarm, once provisioning has made it
        if cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"]:
            break
        time.sleep(0.1)
    cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="5xx above 5%")
    rolled = wait(ws, d3)
    assert rolled["state"] == "rolled_back", rolled
    assert "alarm" in json.dumps(rolled["events"])
    assert weights(aws) == {"churn-v2": 100.0}
    after_rollback = inventory(aws)
    assert not [a for a in after_rollback["alarms"] if "churn-v3" in a]
    assert not [m for m in after_rollback["models"] if m.startswith("churn-v3")]
    assert after_rollback == settled  # the staged copy of v3 included

    # abort mid-rollout, while it waits between steps with 25 % on the candidate
    d4 = ws.ok("deploy", "churn", "3", "-f", bg, "--detach").out.strip()
    waiting = wait(ws, d4)
    assert waiting["state"] == "waiting_approval", waiting
    assert weights(aws) == {"churn-v2": 75.0, "churn-v3": 25.0}
    ws.ok("abort", d4, "--reason", "not today")
    aborted = wait(ws, d4)
    assert aborted["state"] == "aborted", aborted
    assert weights(aws) == {"churn-v2": 100.0}
    # nothing the aborted deployment made is left, the staged copy of v3 included
    assert inventory(aws) == settled
    assert_foreign_untouched(aws)
