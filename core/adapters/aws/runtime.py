"""Calling an endpoint that SageMaker serves: `mmm invoke` with `serving: sagemaker`, and the
replayed inputs of a shadow test."""

from __future__ import annotations

import json
from typing import Any

from core.adapters.aws.errors import aws_call
from core.adapters.aws.session import AwsClients
from core.gateway.client import as_body
from core.ports import PortError


def send(
    clients: AwsClients,
    endpoint: str,
    data: Any,
    region: str | None = None,
    inference_id: str | None = None,
) -> tuple[bytes, str | None]:
    """Send `data` (as the gateway takes it: core.gateway.client.as_body) through the
    SageMaker runtime; returns the raw answer and the production variant that gave it.
    `inference_id` ties the request's captured records together (data capture)."""
    runtime = clients.client("sagemaker-runtime", region)
    args: dict[str, Any] = {
        "EndpointName": endpoint,
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps(as_body(data)).encode(),
    }
    if inference_id is not None:
        args["InferenceId"] = inference_id
    with aws_call("InvokeEndpoint", endpoint):
        response = runtime.invoke_endpoint(**args)
        raw: bytes = response["Body"].read()
    return raw, response.get("InvokedProductionVariant")


def invoke(
    clients: AwsClients, endpoint: str, data: Any, region: str | None = None
) -> dict[str, Any]:
    """Send `data` to the endpoint through the SageMaker runtime; returns the answer as the
    local gateway gives it: `{"predictions": ..., "variant": ...}` (the variant that answered)."""
    raw, variant = send(clients, endpoint, data, region)
    try:
        body = json.loads(raw)
    except ValueError:
        raise PortError(f"{endpoint}: the answer is not JSON ({raw[:80]!r})") from None
    predictions = body.get("predictions", body) if isinstance(body, dict) else body
    return {"predictions": predictions, "variant": variant}
