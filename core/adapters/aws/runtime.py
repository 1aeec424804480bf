"""Calling an endpoint that SageMaker serves (`mmm invoke` with `serving: sagemaker`)."""

from __future__ import annotations

import json
from typing import Any

from core.adapters.aws.errors import aws_call
from core.adapters.aws.session import AwsClients
from core.gateway.client import as_body
from core.ports import PortError


def invoke(
    clients: AwsClients, endpoint: str, data: Any, region: str | None = None
) -> dict[str, Any]:
    """Send `data` to the endpoint through the SageMaker runtime; returns the answer as the
    local gateway gives it: `{"predictions": ..., "variant": ...}` (the variant that answered)."""
    runtime = clients.client("sagemaker-runtime", region)
    with aws_call("InvokeEndpoint", endpoint):
        response = runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(as_body(data)).encode(),
        )
        raw = response["Body"].read()
    try:
        body = json.loads(raw)
    except ValueError:
        raise PortError(f"{endpoint}: the answer is not JSON ({raw[:80]!r})") from None
    predictions = body.get("predictions", body) if isinstance(body, dict) else body
    return {"predictions": predictions, "variant": response.get("InvokedProductionVariant")}
