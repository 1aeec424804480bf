"""Names of what mmm makes on SageMaker, content-addressed and recognisable.

A model is `<variant>-<endpoint key>-<content hash>`; an endpoint config is
`<endpoint>-<endpoint key>-<structure hash>-<weights hash>` (each at most 63 characters,
SageMaker's limit). The endpoint key (8 hex digits of the region and the endpoint name)
ties them to their endpoint, so abort and retirement find and delete exactly what mmm made
for it, and never what it did not make. Content addressing makes `apply` idempotent: the
same wanted state is the same names, and an undo finds its old config by name.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

_HEX8 = "[0-9a-f]{8}"


def digest(value: Any) -> str:
    """8 hex digits of a JSON-able value."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def endpoint_key(endpoint: str, region: str) -> str:
    return digest(f"{region}/{endpoint}")


def _stem(name: str, room: int) -> str:
    return name[:room].rstrip("-") or "x"


def model_name(variant: str, endpoint: str, region: str, content: Any) -> str:
    return f"{_stem(variant, 45)}-{endpoint_key(endpoint, region)}-{digest(content)}"


def config_name(endpoint: str, region: str, structure: Any, weights: Any) -> str:
    key = endpoint_key(endpoint, region)
    return f"{_stem(endpoint, 36)}-{key}-{digest(structure)}-{digest(weights)}"


def config_structure(name: str, endpoint: str, region: str) -> str | None:
    """The structure hash of a config name mmm made for the endpoint; None for any other."""
    key = endpoint_key(endpoint, region)
    match = re.match(rf"^.+-{key}-({_HEX8})-{_HEX8}$", name)
    return match.group(1) if match else None


def owned_config(name: str, endpoint: str, region: str) -> bool:
    return config_structure(name, endpoint, region) is not None


def owned_model(name: str, endpoint: str, region: str) -> bool:
    return re.match(rf"^.+-{endpoint_key(endpoint, region)}-{_HEX8}$", name) is not None
