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


def fetch_checked(
    registry: Registry, mv: ModelVersion, folder: Path
) -> tuple[Path, Path | None, int]:
    """Fetch the version's files into `folder`; the artifact loads with the standard runtime
    and the golden data parses. Returns both files and the number of golden cases.
    Raises InvalidInput naming the file."""
    artifact = registry.fetch(mv, "artifact", folder)
    load_model(artifact, mv.library)
    if mv.golden is None:
        return artifact, None, 0
    golden = registry.fetch(mv, "golden", folder)
    return artifact, golden, len(read_golden(golden))


def check_files(registry: Registry, mv: ModelVersion, scratch: Path) -> int:
    """`fetch_checked` into a scratch folder that is removed afterwards; the golden case count."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="check-", dir=scratch) as tmp:
        return fetch_checked(registry, mv, Path(tmp))[2]


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
