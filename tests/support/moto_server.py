"""One moto server per test session, over real HTTP on 127.0.0.1, with SageMaker, CloudWatch
and DynamoDB extended (tests.support.moto_sagemaker, moto_cloudwatch, moto_dynamodb). Tests reach it through boto3's `endpoint_url`, with dummy
credentials set here: a test never reaches AWS.

moto's state is global per server: the `aws` fixture resets it (`/moto-api/reset`) and the
SageMaker extension's switches before each test.
"""

from __future__ import annotations

import atexit
import logging
import socket
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from core.adapters.aws.session import AwsClients
from tests.support import moto_cloudwatch, moto_dynamodb, moto_sagemaker

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/mmm-sagemaker"
IMAGES = {
    "sklearn": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sklearn-serve:1",
    "xgboost": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/xgboost-serve:1",
    "onnx": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/onnx-serve:1",
    "huggingface": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/hf-serve:1",
    "pytorch": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/torch-serve:1",
}
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}

_lock = threading.Lock()
_url: str | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_url() -> str:
    """The session's moto server (started on first use, stopped at exit)."""
    global _url
    with _lock:
        if _url is None:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
            moto_sagemaker.install()
            moto_cloudwatch.install()
            moto_dynamodb.install()
            port = _free_port()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()
            atexit.register(server.stop)
            _url = f"http://127.0.0.1:{port}"
        return _url


def reset() -> None:
    """Forget every resource on the server and the extension's switches."""
    request = urllib.request.Request(f"{server_url()}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    moto_sagemaker.LIFECYCLE.reset()


@dataclass
class Aws:
    url: str
    clients: AwsClients

    def client(self, service: str, region: str = REGION) -> object:
        return self.clients.client(service, region)


def _pointed(monkeypatch: pytest.MonkeyPatch) -> Aws:
    for name, value in DUMMY_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    url = server_url()
    return Aws(url, AwsClients(REGION, url))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Aws:
    """A fresh moto server state, dummy credentials, and clients pointed at the server."""
    pointed = _pointed(monkeypatch)
    reset()
    return pointed


@pytest.fixture
def aws_as_left(monkeypatch: pytest.MonkeyPatch) -> Aws:
    """Dummy credentials and clients pointed at the server, whose state is as the tests
    before left it (another test may reset it at any time: use it only for what can be
    made again)."""
    return _pointed(monkeypatch)


def inventory(aws: Aws, region: str = REGION) -> dict[str, list[str]]:
    """Everything on the server: S3 objects (every region's), and SageMaker models, configs,
    endpoints, CloudWatch alarms and dashboards of `region`."""
    s3: Any = aws.client("s3")
    sm: Any = aws.client("sagemaker", region)
    cw: Any = aws.client("cloudwatch", region)
    objects = []
    for bucket in s3.list_buckets().get("Buckets", []):
        for obj in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            objects.append(f"{bucket['Name']}/{obj['Key']}")
    return {
        "objects": sorted(objects),
        "models": sorted(m["ModelName"] for m in sm.list_models()["Models"]),
        "configs": sorted(
            c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]
        ),
        "endpoints": sorted(e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]),
        "alarms": sorted(a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]),
        "dashboards": sorted(d["DashboardName"] for d in cw.list_dashboards()["DashboardEntries"]),
    }


def foreign_things(aws: Aws) -> None:
    """Resources mmm did not make, which it must leave alone."""
    s3: Any = aws.client("s3")
    sm: Any = aws.client("sagemaker")
    cw: Any = aws.client("cloudwatch")
    s3.create_bucket(Bucket="someone-else")
    s3.put_object(Bucket="someone-else", Key="models/churn/1/model.joblib", Body=b"x")
    sm.create_model(
        ModelName="their-model",
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={"Image": IMAGES["sklearn"], "ModelDataUrl": "s3://someone-else/m"},
    )
    sm.create_endpoint_config(
        EndpointConfigName="their-config",
        ProductionVariants=[
            {"VariantName": "a", "ModelName": "their-model", "InstanceType": "ml.m5.large",
             "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}
        ],
    )  # fmt: skip
    sm.create_endpoint(EndpointName="their-endpoint", EndpointConfigName="their-config")
    cw.put_metric_alarm(
        AlarmName="their-alarm", MetricName="CPUUtilization", Namespace="AWS/EC2",
        Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=90.0,
        ComparisonOperator="GreaterThanThreshold",
    )  # fmt: skip
