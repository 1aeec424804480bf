"""`mmm invoke`: one request to a gateway endpoint."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from core.ports import InvalidInput, NotFound, PortError, TransientError


def as_body(data: Any) -> dict[str, Any]:
    """`{"instances": ...}` as given; a list of inputs; or one input (a flat list or an object)."""
    if isinstance(data, dict) and "instances" in data:
        return data
    if isinstance(data, list) and data and all(isinstance(x, list | dict) for x in data):
        return {"instances": data}
    if isinstance(data, list | dict):
        return {"instances": [data]}
    raise InvalidInput(f"--data: expected a JSON list or object, got {type(data).__name__}")


def invoke(
    base_url: str, endpoint: str, data: Any, region: str | None = None, timeout_s: float = 30.0
) -> dict[str, Any]:
    """Send `data` to the endpoint (in `region`, else the gateway's home region); returns
    `{"predictions": [...], "variant": ...}`."""
    where = "" if region is None else f"/regions/{quote(region, safe='')}"
    url = f"{base_url.rstrip('/')}{where}/endpoints/{quote(endpoint, safe='')}/invocations"
    try:
        response = httpx.post(url, json=as_body(data), timeout=timeout_s)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        shown = base_url if len(base_url) <= 80 else base_url[:80] + "..."
        raise InvalidInput(f"--url {shown!r}: {exc}") from None
    except httpx.ConnectError:
        raise TransientError(
            f"{base_url}: no gateway answers there (start one with `mmm up`)"
        ) from None
    except httpx.TimeoutException:
        raise TransientError(f"{url}: no answer within {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise TransientError(f"{url}: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict):
        return body
    reason = body.get("error") if isinstance(body, dict) else None
    message = f"{endpoint}: {reason or f'HTTP {response.status_code}'}"
    if response.status_code == 404:
        raise NotFound(message)
    if response.status_code in (400, 413):
        raise InvalidInput(message)
    if response.status_code in (503, 504):
        raise TransientError(message)
    raise PortError(message)
