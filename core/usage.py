"""Where a model is used, read from the systems themselves (not from what mmm remembers).

A usage site is an endpoint variant or shadow, an artifact in the production
bucket, an alarm, generated code on the repository's main branch, or a
registry status that says the version serves.
"""

from __future__ import annotations

import yaml

from core.domain import UsageKind, UsageSite, VersionStatus
from core.layout import (
    ALARM_PREFIX,
    DESCRIPTORS,
    artifact_prefix,
    artifact_root,
    parse_alarm_name,
    parse_artifact_key,
    parse_descriptor_path,
    variant_name,
)
from core.ports import AlarmRef, ArtifactStore, CodeHost, EndpointConfig, PortError, Ports
from core.versions import sort_key


def endpoint_sites(
    configs: list[EndpointConfig], model: str, versions: set[str] | None
) -> list[UsageSite]:
    sites = []
    for config in configs:
        for v in config.variants:
            if v.model == model and (versions is None or v.version in versions):
                sites.append(
                    UsageSite(
                        kind=UsageKind.ENDPOINT,
                        location=config.name,
                        region=config.region,
                        model=model,
                        version=v.version,
                        detail={"variant": v.name, "weight": v.weight, "role": "production"},
                    )
                )
        shadow = config.shadow
        if (
            shadow
            and shadow.variant.model == model
            and (versions is None or shadow.variant.version in versions)
        ):
            sites.append(
                UsageSite(
                    kind=UsageKind.ENDPOINT,
                    location=config.name,
                    region=config.region,
                    model=model,
                    version=shadow.variant.version,
                    detail={"variant": shadow.variant.name, "weight": 0.0, "role": "shadow"},
                )
            )
    return sites


def whole_artifacts(store: ArtifactStore, uris: list[str]) -> list[str]:
    """The artifacts that listed objects `uris` make up, each once, in listing order: a file
    as itself, the files of a folder artifact as the folder's URI (ending in `/`). An object
    whose key is not an artifact's stays as it is (so that retirement still moves it)."""
    out: dict[str, None] = {}
    for uri in uris:
        located = store.locate(uri)
        root = artifact_root(located[1]) if located is not None else None
        out[store.uri(located[0], root) if located is not None and root else uri] = None
    return list(out)


def artifact_sites(
    store: ArtifactStore, uris: list[str], model: str, versions: set[str] | None
) -> list[UsageSite]:
    """The artifacts of `model` among listed objects `uris` (a model folder is one site)."""
    sites = []
    for uri in whole_artifacts(store, uris):
        located = store.locate(uri)
        parsed = parse_artifact_key(located[1]) if located is not None else None
        if parsed and parsed[0] == model and (versions is None or parsed[1] in versions):
            sites.append(
                UsageSite(kind=UsageKind.ARTIFACT, location=uri, model=model, version=parsed[1])
            )
    return sites


def alarm_sites(alarms: list[AlarmRef], model: str, versions: set[str]) -> list[UsageSite]:
    """Alarms whose name says they watch a variant of exactly these versions."""
    sites = []
    for version in sorted(versions, key=sort_key):
        variant = variant_name(model, version)
        for region, name in alarms:
            parsed = parse_alarm_name(name)
            if parsed is not None and parsed.variant == variant:
                sites.append(
                    UsageSite(
                        kind=UsageKind.MONITOR,
                        location=name,
                        region=region,
                        model=model,
                        version=version,
                    )
                )
    return sites


def code_sites(codehost: CodeHost, model: str, versions: set[str] | None) -> list[UsageSite]:
    """Deployment descriptors on main that name the model (and which version they pin)."""
    sites = []
    for path in codehost.files(DESCRIPTORS):
        parsed = parse_descriptor_path(path)
        if parsed is None or parsed[1] != model:
            continue
        try:
            doc = yaml.safe_load(codehost.read(path) or "") or {}
        except (yaml.YAMLError, PortError):
            continue
        # YAML reads the local registry's versions as numbers: compare as text.
        pinned = doc.get("model", {}).get("version") if isinstance(doc.get("model"), dict) else None
        version = str(pinned) if pinned is not None else "0"
        if versions is None or version in versions:
            sites.append(
                UsageSite(
                    kind=UsageKind.CODE,
                    location=path,
                    model=model,
                    version=version,
                    detail={"endpoint": parsed[0]},
                )
            )
    return sites


def registry_site(model: str, version: str, status: VersionStatus, ref: str) -> UsageSite | None:
    if status not in (VersionStatus.STAGING, VersionStatus.PRODUCTION):
        return None
    return UsageSite(
        kind=UsageKind.REGISTRY,
        location=ref,
        model=model,
        version=version,
        detail={"status": status.value},
    )


def sites_of(ports: Ports, model: str, versions: set[str] | None = None) -> list[UsageSite]:
    """Every usage site of `model` (of `versions` only, when given), read from the systems:
    endpoints, the production bucket, alarms, generated code on main, the registry."""
    registered = ports.registry.versions(model)
    wanted = versions if versions is not None else {mv.version for mv in registered}
    sites = endpoint_sites(ports.serving.endpoints(), model, wanted)
    uris = ports.artifacts.list("production", artifact_prefix(model))
    sites += artifact_sites(ports.artifacts, uris, model, wanted)
    sites += alarm_sites(ports.monitor.alarms(ALARM_PREFIX), model, wanted)
    sites += code_sites(ports.codehost, model, wanted)
    for mv in registered:
        if mv.version in wanted:
            site = registry_site(model, mv.version, mv.status, mv.registry_ref)
            if site is not None:
                sites.append(site)
    return sites
