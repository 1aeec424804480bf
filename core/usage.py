"""Where a model is used, read from the systems themselves (not from what mmm remembers).

A usage site is an endpoint variant or shadow, an artifact in the production
bucket, an alarm, generated code on the repository's main branch, or a
registry status that says the version serves.
"""

from __future__ import annotations

import re

import yaml

from core.domain import UsageKind, UsageSite, VersionStatus
from core.ports import CodeHost, EndpointConfig, PortError
from core.traffic import variant_name

_ARTIFACT_KEY = re.compile(r"^models/(?P<model>[^/]+)/(?P<version>\d+)/")
_DEPLOY_FILE = re.compile(r"^deploy/(?P<endpoint>[^/]+)/(?P<model>[^/]+)\.yaml$")


def endpoint_sites(
    configs: list[EndpointConfig], model: str, versions: set[int] | None
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


def artifact_sites(uris: list[str], model: str, versions: set[int] | None) -> list[UsageSite]:
    sites = []
    for uri in uris:
        key = uri.split("://", 1)[-1].split("/", 1)[-1]
        m = _ARTIFACT_KEY.match(key)
        if m and m["model"] == model and (versions is None or int(m["version"]) in versions):
            sites.append(
                UsageSite(
                    kind=UsageKind.ARTIFACT, location=uri, model=model, version=int(m["version"])
                )
            )
    return sites


def alarm_sites(
    names: list[str], model: str, versions: set[int], region: str | None
) -> list[UsageSite]:
    sites = []
    for version in sorted(versions):
        marker = f"-{variant_name(model, version)}-"
        for name in names:
            if marker in name:
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


def code_sites(codehost: CodeHost, model: str, versions: set[int] | None) -> list[UsageSite]:
    """Deployment descriptors on main that name the model (and which version they pin)."""
    sites = []
    for path in codehost.files("deploy/"):
        m = _DEPLOY_FILE.match(path)
        if not m or m["model"] != model:
            continue
        try:
            doc = yaml.safe_load(codehost.read(path) or "") or {}
        except (yaml.YAMLError, PortError):
            continue
        version = (
            int(doc.get("model", {}).get("version", 0)) if isinstance(doc.get("model"), dict) else 0
        )
        if versions is None or version in versions:
            sites.append(
                UsageSite(
                    kind=UsageKind.CODE,
                    location=path,
                    model=model,
                    version=version,
                    detail={"endpoint": m["endpoint"]},
                )
            )
    return sites


def registry_site(model: str, version: int, status: VersionStatus, ref: str) -> UsageSite | None:
    if status not in (VersionStatus.STAGING, VersionStatus.PRODUCTION):
        return None
    return UsageSite(
        kind=UsageKind.REGISTRY,
        location=ref,
        model=model,
        version=version,
        detail={"status": status.value},
    )
