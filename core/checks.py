"""Checks that must pass before a deployment is accepted.

The service runs them before it records anything (bad input changes no
state), and the worker runs them again when the deployment starts, since the
world may have changed in between.

A joblib or pickle artifact runs code when it is loaded: the artifact checks
load and predict in a child process without credentials
(`core.runtime.child`), never in the caller. A model only its serving
container loads (`Library.container_only`) is checked by its files instead
(`core.container_models`), in this process: nothing of it runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from core.container_models import check_by_files, check_present
from core.domain import Library, ModelVersion
from core.layout import check_variant
from core.names import InvalidName
from core.ports import EndpointConfig, InvalidInput, PortError, Registry
from core.spec import DeploymentSpec, Shadow
from core.traffic import serves

if TYPE_CHECKING:
    from core.runtime.golden import GoldenCase
    from core.runtime.loaders import Predictor

# Loading a model and predicting its golden inputs; a model slower than this is refused.
CHECK_TIMEOUT_S = 300.0
_BATCH = 256


def check_artifact(artifact: Path, library: Library, golden: Path | None, scratch: Path) -> int:
    """The artifact loads with the standard runtime, the golden data parses and every golden
    input fits the model; returns the number of golden cases (0 without golden data).

    Runs in a child process without credentials (the artifact may be a pickle), working in a
    folder under `scratch` that is removed afterwards. Raises InvalidInput with a one-line
    reason. An output that differs from the expected one is not refused here: the golden
    check at deploy time judges outputs, with the deployment's tolerance.

    A library only its serving container loads is checked by its files (the artifact may be
    a folder) and its golden data only counted: its outputs are checked against the endpoint.
    """
    check_present(artifact, library)
    if golden is not None and not golden.is_file():
        raise InvalidInput(f"{golden}: no such file")
    if Library(library).container_only:
        return check_by_files(artifact, library, golden)
    from core.runtime.child import ChildDied, call

    request = {
        "op": "check",
        "artifact": str(artifact.resolve()),
        "library": Library(library).value,
        "golden": str(golden.resolve()) if golden is not None else None,
    }
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="check-", dir=scratch) as tmp:
        try:
            result = call(request, cwd=Path(tmp), timeout_s=CHECK_TIMEOUT_S)
        except ChildDied as exc:
            raise InvalidInput(f"{artifact.name}: the model check gave no answer ({exc})") from None
        except InvalidInput:
            raise
        except PortError as exc:  # whatever else went wrong, the artifact is not accepted
            raise InvalidInput(f"{artifact.name}: the model check failed: {exc}") from None
    return int(result)


def golden_fit(model: Predictor, cases: Sequence[GoldenCase], name: str) -> None:
    """Every golden input is one the model takes; raises InvalidInput
    "<name> line N does not fit the model: <reason>" for the first that is not.

    A model that raises on an input it takes (ModelFailed) is not refused: like an output
    that differs, that is for the golden check to judge.
    """
    from core.runtime.loaders import ModelFailed

    def refused(rows: Sequence[GoldenCase]) -> InvalidInput | None:
        try:
            model.predict([case.input for case in rows])
        except ModelFailed:
            return None
        except InvalidInput as exc:
            return exc
        return None

    for start in range(0, len(cases), _BATCH):
        batch = cases[start : start + _BATCH]
        error = refused(batch)
        if error is None:
            continue
        for case in batch:
            alone = refused([case])
            if alone is not None:
                raise InvalidInput(f"{name} line {case.line} does not fit the model: {alone}")
        # Each fits alone but not together (rows of different widths, say).
        first, last = batch[0].line, batch[-1].line
        raise InvalidInput(f"{name} lines {first}-{last} do not fit the model together: {error}")


def fetch_checked(
    registry: Registry, mv: ModelVersion, folder: Path
) -> tuple[Path, Path | None, int]:
    """Fetch the version's files into `folder` and `check_artifact` them. Returns both files
    (the artifact may be a folder: see `check_artifact`) and the number of golden cases.
    Raises InvalidInput naming the file."""
    artifact = registry.fetch(mv, "artifact", folder)
    golden = registry.fetch(mv, "golden", folder) if mv.golden is not None else None
    return artifact, golden, check_artifact(artifact, mv.library, golden, folder)


def check_files(registry: Registry, mv: ModelVersion, scratch: Path) -> int:
    """`fetch_checked` into a scratch folder that is removed afterwards; the golden case count."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="check-", dir=scratch) as tmp:
        return fetch_checked(registry, mv, Path(tmp))[2]


def check_endpoint(
    mv: ModelVersion, endpoint: str, spec: DeploymentSpec, current: dict[str, EndpointConfig | None]
) -> None:
    """The version's variant name is valid, it does not serve there already, and a shadow
    has something to shadow."""
    try:
        name = check_variant(mv.name, mv.version)
    except InvalidName as exc:
        raise InvalidInput(str(exc)) from None
    for region, config in current.items():
        if config is not None and any(v.name == name and v.weight > 0 for v in config.variants):
            raise InvalidInput(f"{mv.name} v{mv.version} already serves on {endpoint} ({region})")
        if isinstance(spec.strategy, Shadow) and not serves(config):
            raise InvalidInput(
                f"strategy shadow needs {endpoint} ({region}) to serve a production version "
                "to compare with; deploy the first version all-at-once or blue-green"
            )
