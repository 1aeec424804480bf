"""Steps on the model version itself: validate and stage it, copy its artifact to
production (delete it to undo), set its registry status."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from core.checks import check_endpoint, fetch_checked
from core.domain import Command, Deployment, Kind, ModelVersion, VersionStatus, known
from core.layout import artifact_key
from core.steps.base import Done, Outcome, Steps, endpoint_entry


class ArtifactSteps(Steps):
    def _mv(self, d: Deployment) -> ModelVersion:
        return self.ports.registry.get(d.model, d.version)

    def _stage_key(self, d: Deployment, filename: str) -> str:
        return artifact_key(d.model, d.version, filename)

    def validate(self, d: Deployment, cmd: Command) -> Outcome:
        mv = self._mv(d)
        current = {r: self.ports.serving.get_endpoint(d.endpoint, r) for r in d.regions}
        check_endpoint(mv, d.endpoint, d.spec, current)
        facts: dict[str, Any] = {
            "library": mv.library.value,
            "sha256": mv.sha256,
            "statuses": {str(mv.version): mv.status.value},
            "endpoints": [endpoint_entry(d.endpoint, r, c) for r, c in current.items()],
        }
        self.ws.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="stage-", dir=self.ws.scratch) as tmp:
            artifact, golden, cases = fetch_checked(self.ports.registry, mv, Path(tmp))
            facts["artifact_staging"] = self.ports.artifacts.put(
                "staging", self._stage_key(d, artifact.name), artifact
            )
            if golden is not None:
                facts["golden_staging"] = self.ports.artifacts.put(
                    "staging", self._stage_key(d, "golden.jsonl"), golden
                )
        summary = f"{d.model} v{d.version} ({mv.library}) loads; {cases} golden cases"
        return Done({"facts": facts, "summary": summary})

    def copy_artifact(self, d: Deployment, cmd: Command) -> Outcome:
        staging = known(d.context.artifact_staging, "artifact_staging")
        name = staging.rsplit("/", 1)[-1]
        uri = self.ports.artifacts.copy(staging, "production", self._stage_key(d, name))
        return Done(
            {"uri": uri, "created": True, "facts": {"artifact_production": uri}, "summary": uri}
        )

    def _referenced(self, uri: str) -> bool:
        for config in self.ports.serving.endpoints():
            variants = list(config.variants) + ([config.shadow.variant] if config.shadow else [])
            if any(v.artifact == uri for v in variants):
                return True
        return False

    def delete_artifact(self, d: Deployment, cmd: Command) -> Outcome:
        # Another endpoint may serve the same version from the same file: keep it then.
        kept = [u for u in cmd.args["uris"] if self._referenced(u)]
        for uri in cmd.args["uris"]:
            if uri not in kept:
                self.ports.artifacts.delete(uri)
        return Done({"summary": f"kept {len(kept)} still in use" if kept else "deleted"})

    def set_status(self, d: Deployment, cmd: Command) -> Outcome:
        before = dict(d.context.statuses)
        if "statuses" in cmd.args:  # an undo: put back what was there
            wanted = {k: str(v) for k, v in cmd.args["statuses"].items()}
        else:
            wanted = {str(v): cmd.args["status"] for v in self._versions(d)}
            if cmd.args["status"] == VersionStatus.PRODUCTION.value:
                # the versions it replaced serve nowhere now: archived until retired
                wanted |= {str(v): VersionStatus.ARCHIVED.value for v in d.context.drained}
        undo = "statuses" in cmd.args
        for version, status in wanted.items():
            self.ports.registry.set_status(
                d.model,
                version,
                VersionStatus(status),
                d.requested_by,
                endpoint=_endpoint_of(d, version, VersionStatus(status), undo),
            )
        previous = {v: before[v] for v in wanted if before.get(v) and before[v] != wanted[v]}
        statuses = {**before, **wanted}
        summary = ", ".join(f"v{v} {s}" for v, s in wanted.items())
        return Done({"previous": previous, "facts": {"statuses": statuses}, "summary": summary})


# Statuses that say a version stands on the endpoint they are about.
_ON_ENDPOINT = frozenset({VersionStatus.STAGING, VersionStatus.PRODUCTION})


def _endpoint_of(d: Deployment, version: str, status: VersionStatus, undo: bool) -> str | None:
    """The endpoint a status set by `d` is about, for registries that tag it.

    A retirement is about no one endpoint. An undo puts back the versions that `d` drained
    (on its endpoint again) and takes `d`'s own version off it; when that version goes
    back to staging or production it stood there for another endpoint, so the status is
    not about this one."""
    if d.kind is not Kind.DEPLOY:
        return None
    if undo and version == str(d.version) and status in _ON_ENDPOINT:
        return None
    return d.endpoint
