"""`mmm invoke` and `mmm up` where SageMaker serves: the runtime, and no local gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from core.bootstrap import init_workspace
from tests.support.moto_server import IMAGES, ROLE_ARN, Aws, aws  # noqa: F401

MMM = Path(sys.executable).parent / "mmm"


def sagemaker_workspace(tmp_path: Path, url: str) -> dict[str, str]:
    home = tmp_path / "ws"
    init_workspace(home)
    settings = yaml.safe_load((home / "mmm.yaml").read_text())
    settings["backends"]["serving"] = "sagemaker"
    settings["aws"].update(endpoint_url=url, role_arn=ROLE_ARN, images=IMAGES)
    (home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    return {**os.environ, "MMM_HOME": str(home), "COMET_ERROR_TRACKING_ENABLE": "false"}


def test_invoke_goes_through_the_sagemaker_runtime(aws: Aws, tmp_path: Path) -> None:  # noqa: F811
    answer = {"Body": json.dumps({"predictions": [0.25]}), "InvokedProductionVariant": "churn-v1"}
    httpx.post(
        f"{aws.url}/moto-api/static/sagemaker/endpoint-results", json={"results": [answer]}
    ).raise_for_status()
    env = sagemaker_workspace(tmp_path, aws.url)
    out = subprocess.run(
        [str(MMM), "invoke", "churn", "--data", "[1.0, 2.0]"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"predictions": [0.25], "variant": "churn-v1"}


def test_up_serves_health_and_metrics_without_a_local_gateway(aws: Aws, tmp_path: Path) -> None:  # noqa: F811
    env = sagemaker_workspace(tmp_path, aws.url)
    log = tmp_path / "up.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([str(MMM), "up", "--port", "0"], env=env, stdout=sink, stderr=sink)
        try:
            url = None
            for _ in range(600):  # the line that says where, once it listens
                text = log.read_text()
                if "health and metrics on " in text:
                    url = text.split("health and metrics on ", 1)[1].split(",", 1)[0]
                    break
                assert proc.poll() is None, text
                time.sleep(0.1)
            assert url is not None, log.read_text()
            assert httpx.get(f"{url}/healthz").json()["serving"] == "sagemaker"
            assert httpx.get(f"{url}/metrics").status_code == 200
            assert httpx.post(f"{url}/endpoints/churn/invocations", json={}).status_code == 404
        finally:
            proc.terminate()
            assert proc.wait(timeout=60) == 0, log.read_text()
    assert "gateway" not in log.read_text().split("\n", 1)[0]
