"""A registry that names its versions as Comet does ("1.0.0", "1.1.0"), over the local one.

The local registry numbers versions 1, 2, 3; this one shows the n-th as `names[n-1]` and
takes those names back, so the whole local pipeline runs with versions that are not numbers.
"""

from __future__ import annotations

from pathlib import Path

from core.adapters.local.registry import LocalRegistry
from core.domain import Library, ModelVersion, VersionStatus
from core.ports import NotFound


class NamedVersionsRegistry:
    def __init__(self, inner: LocalRegistry, names: list[str]) -> None:
        self.inner = inner
        self.names = names

    def _named(self, mv: ModelVersion) -> ModelVersion:
        name = self.names[int(mv.version) - 1]
        return mv.model_copy(update={"version": name, "registry_ref": f"test:{mv.name}@{name}"})

    def _number(self, name: str, version: str) -> str:
        if version not in self.names:
            raise NotFound(f"model {name!r} has no version {version}")
        return str(self.names.index(version) + 1)

    def register(
        self,
        name: str,
        artifact: Path,
        library: Library,
        golden: Path | None,
        owner: str | None,
        actor: str,
    ) -> ModelVersion:
        return self._named(self.inner.register(name, artifact, library, golden, owner, actor))

    def get(self, name: str, version: str) -> ModelVersion:
        return self._named(self.inner.get(name, self._number(name, version)))

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        return [self._named(mv) for mv in self.inner.versions(name)]

    def set_status(
        self,
        name: str,
        version: str,
        status: VersionStatus,
        actor: str,
        *,
        endpoint: str | None = None,
    ) -> VersionStatus:
        return self.inner.set_status(
            name, self._number(name, version), status, actor, endpoint=endpoint
        )

    def fetch(self, mv: ModelVersion, what: str, dest: Path) -> Path:
        return self.inner.fetch(
            self.inner.get(mv.name, self._number(mv.name, mv.version)), what, dest
        )
