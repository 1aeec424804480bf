"""Steps on the model version itself: validate and stage it, copy its artifact to
production (delete it to undo), set its registry status."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core.checks import check_endpoint, fetch_checked
from core.domain import (
    Command,
    Deployment,
    DeploymentState,
    Kind,
    ModelVersion,
    VersionStatus,
    known,
)
from core.layout import artifact_key, artifact_name
from core.steps.base import Done, Outcome, Steps, endpoint_entry


@runtime_checkable
class RegionalBuckets(Protocol):
    """An artifact store with buckets per region (S3): production data is copied into the
    production bucket of each region it serves in. The embedded store has one place."""

    def bucket_in(self, purpose: str, region: str) -> str:
        """The bucket argument of `purpose`'s bucket in `region`."""
        ...


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
            # a model folder is staged whole, under a key ending in `/` (an S3 prefix)
            name = f"{artifact.name}/" if artifact.is_dir() else artifact.name
            facts["artifact_staging"] = self.ports.artifacts.put(
                "staging", self._stage_key(d, name), artifact
            )
            if golden is not None:
                facts["golden_staging"] = self.ports.artifacts.put(
                    "staging", self._stage_key(d, "golden.jsonl"), golden
                )
        summary = f"{d.model} v{d.version} ({mv.library}) loads; {cases} golden cases"
        return Done({"facts": facts, "summary": summary})

    def _copies(self, d: Deployment, uri: str) -> list[tuple[str | None, str]]:
        """(region, URI) of each production copy of the artifact named `uri` (its name in the
        home region's bucket): one per deployment region where buckets are per region, else
        the one copy (region None)."""
        store = self.ports.artifacts
        located = store.locate(uri)
        if not isinstance(store, RegionalBuckets) or located is None:
            return [(None, uri)]
        bucket, key = located
        return [(r, store.uri(store.bucket_in(bucket, r), key)) for r in d.regions]

    def copy_artifact(self, d: Deployment, cmd: Command) -> Outcome:
        staging = known(d.context.artifact_staging, "artifact_staging")
        # a staged folder (its URI ends in `/`) is copied whole, to a key ending in `/`
        key = self._stage_key(d, artifact_name(staging))
        store = self.ports.artifacts
        if isinstance(store, RegionalBuckets):
            # a copy in each deployment region's bucket, named above the ports by its URI in
            # the home region's (the serving adapter reads each region's own copy)
            copies = [store.copy(staging, store.bucket_in("production", r), key) for r in d.regions]
            located = store.locate(copies[0])
            uri = store.uri("production", located[1] if located else key)
        else:
            uri = store.copy(staging, "production", key)
            copies = [uri]
        return Done(
            {
                "uri": uri,
                "created": True,
                "facts": {"artifact_production": uri},
                "summary": ", ".join(copies),
            }
        )

    def _served(self) -> set[tuple[str, str]]:
        """(region, artifact) of every variant that serves, shadow variants included."""
        served = set()
        for config in self.ports.serving.endpoints():
            variants = list(config.variants) + ([config.shadow.variant] if config.shadow else [])
            served |= {(config.region, v.artifact) for v in variants}
        return served

    def delete_artifact(self, d: Deployment, cmd: Command) -> Outcome:
        # Another endpoint may serve the same version from the same file: keep it then (a
        # region's copy, while an endpoint of that region serves it).
        served = self._served()
        kept = []
        for uri in cmd.args["uris"]:
            for region, copy in self._copies(d, uri):
                if any(a == uri and region in (None, r) for r, a in served):
                    kept.append(copy)
                else:
                    self.ports.artifacts.delete(copy)
        return Done({"summary": f"kept {len(kept)} still in use" if kept else "deleted"})

    def delete_staged(self, d: Deployment, cmd: Command) -> Outcome:
        # The staged copy is the version's, named in the code of every deployment of it:
        # kept while another deployment of the version is under way or has succeeded (its
        # retirement deletes it then).
        others = [
            o.id
            for o in self._deployments_of(d.model)
            if o.id != d.id and o.version == d.version and o.state not in _UNDONE
        ]
        if others:
            return Done({"summary": f"kept: {others[0]} uses v{d.version} too"})
        for uri in cmd.args["uris"]:
            self.ports.artifacts.delete(uri)
        return Done({"summary": f"deleted {len(cmd.args['uris'])} staged file(s)"})

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


# Deployments that ended with what they did undone: they need no staged copy.
_UNDONE = frozenset({DeploymentState.ABORTED, DeploymentState.ROLLED_BACK, DeploymentState.FAILED})

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
