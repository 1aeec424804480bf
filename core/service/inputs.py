"""A deploy request's options (deployment file, --endpoint, --strategy, --region) turned
into one checked DeploymentSpec; bad input raises BadRequest and records nothing."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.ports import EndpointConfig, InvalidInput
from core.service.errors import BadRequest
from core.spec import (
    DeploymentSpec,
    Replay,
    Shadow,
    SpecError,
    StrategyKind,
    merge,
    parse_deployment,
    read_deployment_file,
)


def deployment_spec(
    defaults: dict[str, Any],
    file: Path | None,
    endpoint: str | None,
    strategy: str | None,
    regions: list[str] | None,
) -> DeploymentSpec:
    """The settings' defaults, then the deployment file, then the options, parsed as one
    deployment file (a replay file pinned, see `with_replay_resolved`)."""
    try:
        data = merge({}, defaults)
        source = "deployment"
        if file is not None:
            data = merge(data, read_deployment_file(file))
            source = str(file)
        if endpoint is not None:
            data["endpoint"] = endpoint  # "" is refused by the spec, never "the default"
        if regions:
            data["regions"] = list(regions)
        if strategy:
            try:
                kind = StrategyKind(strategy)
            except ValueError:
                raise BadRequest(
                    f"--strategy {strategy}: expected one of {', '.join(k.value for k in StrategyKind)}"
                ) from None
            # the file's settings of that strategy stay; those of another strategy go
            current = data.get("strategy") or {}
            keep = (
                current
                if isinstance(current, dict) and current.get("kind", kind.value) == kind.value
                else {}
            )
            data["strategy"] = {**keep, "kind": kind.value}
        spec = parse_deployment(data, source)
    except SpecError as exc:
        raise BadRequest(str(exc)) from None
    return with_replay_resolved(spec, file)


def default_endpoint(
    model: str, spec: DeploymentSpec, endpoints: Iterable[EndpointConfig]
) -> DeploymentSpec:
    """No endpoint named: the one endpoint that serves the model now, if there is one."""
    if spec.endpoint is not None:
        return spec
    serving = sorted({c.name for c in endpoints for v in c.variants
                      if v.model == model and v.weight > 0})  # fmt: skip
    if len(serving) == 1:
        return spec.model_copy(update={"endpoint": serving[0]})
    where = f" ({model} serves on {', '.join(serving)})" if serving else ""
    raise BadRequest(
        f"no endpoint: pass --endpoint NAME or set `endpoint:` in the deployment file{where}"
    )


def with_replay_resolved(spec: DeploymentSpec, file: Path | None) -> DeploymentSpec:
    """A replay file is read by whichever worker runs the deployment, maybe elsewhere:
    pin it to an absolute path (relative to the deployment file) and check it now."""
    strategy = spec.strategy
    if not isinstance(strategy, Shadow) or not isinstance(strategy.traffic, Replay):
        return spec
    path = Path(strategy.traffic.replay).expanduser()
    if not path.is_absolute():
        path = (file.parent if file is not None else Path.cwd()) / path
    from core.steps import read_replay  # with every step's libraries: only for a replay

    try:
        read_replay(path)
    except InvalidInput as exc:
        raise BadRequest(str(exc)) from None
    traffic = Replay(replay=str(path.resolve()))
    return spec.model_copy(update={"strategy": strategy.model_copy(update={"traffic": traffic})})
