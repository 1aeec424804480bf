"""How the boto3 clients are configured (core.adapters.aws.session): no call is made."""

from __future__ import annotations

from core.adapters.aws import AwsClients


def test_an_invocation_waits_for_sagemakers_limit_and_is_sent_once() -> None:
    clients = AwsClients("us-east-1", endpoint_url="http://127.0.0.1:9")
    runtime = clients.client("sagemaker-runtime").meta.config
    assert runtime.read_timeout == 70  # SageMaker answers or gives up within 60 s
    assert runtime.retries["total_max_attempts"] == 1
    control = clients.client("sagemaker").meta.config
    assert control.read_timeout == 30 and control.retries["total_max_attempts"] == 3
