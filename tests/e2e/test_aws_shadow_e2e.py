"""Shadow tests on SageMaker end to end through the `mmm` command (a moto server over HTTP in
the test process, extended with shadow variants, data capture and a runtime that answers
with the registered models themselves: tests.support.moto_sagemaker). One candidate that
predicts as production does is promoted on the analysis of its captured pairs; one whose
predictions moved is rolled back. After either, nothing mmm made for the candidate is
left but SageMaker's capture objects and the analysis' charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import pytest

from tests.e2e.conftest import Workspace
from tests.e2e.test_aws_cli_e2e import ENDPOINT, cloud, weights  # noqa: F401
from tests.support.models import replayed_shadow_file, sample_instances, train_sklearn_regressor
from tests.support.moto_sagemaker import LIFECYCLE
from tests.support.moto_server import REGION, Aws, aws, inventory  # noqa: F401

pytestmark = pytest.mark.slow

ROWS = sample_instances(10, 40)
CAPTURES = f"mmm-captures-{REGION}"


def serves(artifact: Path) -> Any:
    """The SageMaker runtime's answer of a container serving `artifact` (a joblib model)."""
    model = joblib.load(artifact)

    def respond(body: bytes) -> bytes:
        rows = json.loads(body)["instances"]
        return json.dumps({"predictions": [float(y) for y in model.predict(rows)]}).encode()

    return respond


def captures(objects: list[str]) -> list[str]:
    return [o for o in objects if o.startswith(f"{CAPTURES}/")]


def test_shadow_on_sagemaker_promotes_on_pass_and_rolls_back_on_fail(
    cloud: Workspace,  # noqa: F811
    aws: Aws,  # noqa: F811
    tmp_path: Path,
) -> None:
    ws = cloud
    ws.register(seed=0)  # v1
    ws.register(seed=0)  # v2: the same model again, so its predictions match
    ws.register(seed=0, shift=40.0)  # v3: its predictions moved by 40
    LIFECYCLE.responders.update(
        {
            "churn-v1": serves(train_sklearn_regressor(ws.models, seed=0)),
            "churn-v2": serves(train_sklearn_regressor(ws.models, seed=0)),
            "churn-v3": serves(train_sklearn_regressor(ws.models, seed=0, shift=40.0)),
        }
    )
    d1 = ws.ok("deploy", "churn", "1", "--endpoint", ENDPOINT, "--json").json()
    assert d1["state"] == "succeeded", d1["error"]
    spec = str(replayed_shadow_file(tmp_path, ROWS, endpoint=ENDPOINT))

    before = inventory(aws)
    d2 = ws.ok("deploy", "churn", "2", "-f", spec, "--json").json()
    assert d2["state"] == "succeeded", d2["error"]
    assert d2["analysis"]["verdict"] == "pass", d2["analysis"]
    assert d2["analysis"]["samples"] == len(ROWS)
    assert weights(aws) == {"churn-v2": 100.0}
    promoted = inventory(aws)
    assert [m.split("-")[:2] for m in promoted["models"]] == [["churn", "v2"]]
    assert len(promoted["configs"]) == 1
    sm: Any = aws.client("sagemaker")
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    )
    assert not config.get("ShadowProductionVariants") and not config.get("DataCaptureConfig")
    captured = captures(sorted(set(promoted["objects"]) - set(before["objects"])))
    assert {o.split("/")[2] for o in captured} == {"churn-v1", "churn-v2"}
    assert len(captured) == 2 * len(ROWS)

    before = inventory(aws)
    res = ws.run("deploy", "churn", "3", "-f", spec, "--json")
    assert res.code != 0
    d3 = res.json()
    assert d3["state"] == "rolled_back", d3
    assert d3["analysis"]["verdict"] == "fail", d3["analysis"]
    assert "shadow analysis failed" in (d3["error"] or "")
    assert weights(aws) == {"churn-v2": 100.0}
    after = inventory(aws)
    assert {k: v for k, v in after.items() if k != "objects"} == {
        k: v for k, v in before.items() if k != "objects"
    }
    new = set(after["objects"]) - set(before["objects"])
    charts = {o for o in new if o.startswith(f"mmm-reports-{REGION}/{d3['id']}/")}
    assert charts and sorted(new - charts) == captures(sorted(new))
    assert len(captures(sorted(new))) == 2 * len(ROWS)
