"""Calling an endpoint that SageMaker serves: `mmm invoke` with `serving: sagemaker`, the
replayed inputs of a shadow test, and the golden check of one variant (`TargetVariant`)."""

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
    target_variant: str | None = None,
) -> tuple[bytes, str | None]:
    """Send `data` (as the gateway takes it: core.gateway.client.as_body) through the
    SageMaker runtime; returns the raw answer and the production variant that gave it.
    `inference_id` ties the request's captured records together (data capture);
    `target_variant` sends it to that variant whatever its weight."""
    runtime = clients.client("sagemaker-runtime", region)
    args: dict[str, Any] = {
        "EndpointName": endpoint,
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps(as_body(data)).encode(),
    }
    if inference_id is not None:
        args["InferenceId"] = inference_id
    if target_variant is not None:
        args["TargetVariant"] = target_variant
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
    return {"predictions": predictions(endpoint, raw), "variant": variant}


def predictions(endpoint: str, raw: bytes) -> Any:
    """The predictions of an answer in mmm's invocation contract (`{"predictions": [...]}`;
    a bare JSON value is taken as it is)."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise PortError(f"{endpoint}: the answer is not JSON ({raw[:80]!r})") from None
    return body.get("predictions", body) if isinstance(body, dict) else body
