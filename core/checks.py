"""Checks that must pass before a deployment is accepted.

The service runs them before it records anything (bad input changes no
state), and the worker runs them again when the deployment starts, since the
world may have changed in between.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from core.domain import ModelVersion
from core.ports import EndpointConfig, InvalidInput, Registry
from core.runtime import load_model, read_golden
from core.spec import DeploymentSpec, Shadow
from core.traffic import serves, variant_name


def check_files(registry: Registry, mv: ModelVersion, scratch: Path) -> int:
    """The artifact loads with the standard runtime and the golden data parses.

    Returns the number of golden cases. Raises InvalidInput naming the file."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="check-", dir=scratch) as tmp:
        artifact = registry.fetch(mv, "artifact", Path(tmp))
        load_model(artifact, mv.library)
        if mv.golden is None:
            return 0
        return len(read_golden(registry.fetch(mv, "golden", Path(tmp))))


def check_endpoint(
    mv: ModelVersion, endpoint: str, spec: DeploymentSpec, current: dict[str, EndpointConfig | None]
) -> None:
    """The version does not serve there already, and a shadow has something to shadow."""
    name = variant_name(mv.name, mv.version)
    for region, config in current.items():
        if config is not None and any(v.name == name and v.weight > 0 for v in config.variants):
            raise InvalidInput(f"{mv.name} v{mv.version} already serves on {endpoint} ({region})")
        if isinstance(spec.strategy, Shadow) and not serves(config):
            raise InvalidInput(
                f"strategy shadow needs {endpoint} ({region}) to serve a production version "
                "to compare with; deploy the first version all-at-once or blue-green"
            )
