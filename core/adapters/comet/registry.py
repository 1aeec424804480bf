"""`core.ports.Registry` on a Comet workspace's model registry.

Versions are Comet's own names (`1.1.0`). A model or version that is not in the
workspace is `NotFound`, so a deployment of it is refused before anything is created.
Registering makes a new version the way Comet does from an experiment, through its REST
API: an experiment in project `mmm-registrations`, the files logged to it as a model, and
that model registered as the next version (`records.next_version`: 1.0.0, then 1.1.0,
1.2.0, ...), tagged `library:LIB` and `owner:TEAM`. A model folder (a library only its
serving container loads) is logged file by file as `model/<relative path>`, as comet_ml's
`log_model` logs a folder, and fetched back whole.
Where a version stands is written back to Comet as tags, with `endpoint:NAME` for the
endpoint it stands on (and as its status where the workspace allows that value): see
`core.adapters.comet.records`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from core.adapters.comet.client import CometClient, log_model_file, new_experiment
from core.adapters.comet.records import (
    GOLDEN,
    MODEL_FOLDER,
    STATUS_TAGS,
    SUFFIX_OF_FORMAT,
    endpoint_changes,
    model_version,
    next_version,
    registration_tags,
    status_of,
    tags_of,
)
from core.adapters.local.artifacts import tree_files
from core.container_models import artifact_format, check_present
from core.domain import Library, ModelVersion, VersionStatus
from core.ports import InvalidInput, NotFound, PortError, TransientError

log = logging.getLogger(__name__)

# The Comet project whose experiments carry the files of versions registered through mmm.
REGISTER_PROJECT = "mmm-registrations"
# Registrations racing for the same version name: how many times to take the next one.
_REGISTER_TRIES = 3


class CometRegistry:
    """The model registry of Comet workspace `workspace`, reached with `api_key`
    (`COMET_API_KEY`; `COMET_URL_OVERRIDE` points comet_ml at a self-hosted Comet)."""

    def __init__(self, workspace: str, api_key: str) -> None:
        self.workspace = workspace
        self._client = CometClient(api_key)
        self._allowed: list[str] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ reading

    def _details(self, name: str) -> dict[str, Any]:
        try:
            details = self._client.call(
                f"reading model {name!r}",
                lambda api: api.get_registry_model_details(self.workspace, name),
            )
        except NotFound:
            raise NotFound(
                f"model {name!r} is not in the registry of Comet workspace {self.workspace!r}"
            ) from None
        if not isinstance(details, dict):
            raise NotFound(
                f"model {name!r} is not in the registry of Comet workspace {self.workspace!r}"
            )
        return details

    def _version_details(self, name: str, version: str) -> dict[str, Any]:
        entries = self._details(name).get("versions") or []
        for entry in entries:
            if str(entry.get("version")) == version:
                return dict(entry)
        known = ", ".join(str(e.get("version")) for e in entries) or "none"
        raise NotFound(f"model {name!r} has no version {version} in Comet (versions: {known})")

    def get(self, name: str, version: str) -> ModelVersion:
        return model_version(self.workspace, name, self._version_details(name, version))

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        if name is None:
            names = self._client.call(
                "listing registry models",
                lambda api: list(api.get_registry_model_names(self.workspace)),
            )
        else:
            names = [name]
        out: list[ModelVersion] = []
        for model in names:
            try:
                details = self._details(str(model))
            except NotFound:
                continue
            for entry in details.get("versions") or []:
                try:
                    out.append(model_version(self.workspace, str(model), entry))
                except InvalidInput as exc:  # listed by Comet, not deployable by mmm
                    log.warning("skipping a Comet version: %s", exc)
        return out

    # ------------------------------------------------------------ files

    def fetch(self, mv: ModelVersion, what: str, dest: Path) -> Path:
        wanted = mv.artifact if what == "artifact" else mv.golden
        if wanted is None:
            raise NotFound(f"{mv.name} {mv.version} has no {what}")
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="comet-", dir=dest) as tmp:
            self._client.call(
                f"downloading {mv.name} {mv.version}",
                lambda api: api.download_registry_model(
                    self.workspace, mv.name, mv.version, output_path=tmp
                ),
            )
            if wanted.endswith("/"):
                return _take_folder(Path(tmp), wanted, dest, f"{mv.name} {mv.version}")
            found = [p for p in Path(tmp).rglob("*") if p.is_file() and p.name == wanted]
            if not found:
                raise NotFound(f"{mv.name} {mv.version}: Comet sent no {wanted}")
            target = dest / PurePosixPath(wanted).name
            shutil.move(found[0], target)
        return target

    def register(
        self,
        name: str,
        artifact: Path,
        library: Library,
        golden: Path | None,
        owner: str | None,
        actor: str,
    ) -> ModelVersion:
        """A new version of `name` from these files, named the registry's way (the next
        semantic version), tagged with its library and owner."""
        check_present(artifact, library)  # a file, or a folder for a container-only library
        if golden is not None and not golden.is_file():
            raise InvalidInput(f"{golden}: no such file")
        fmt = artifact_format(artifact, library)
        if artifact.is_dir():
            files = {f"{MODEL_FOLDER}{rel}": artifact / rel for rel in tree_files(artifact)}
        else:
            files = {f"model{SUFFIX_OF_FORMAT[fmt]}": artifact}
        if golden is not None:
            files[GOLDEN] = golden
        what = f"registering {name} in Comet"
        experiment = self._client.call(
            what,
            lambda api: new_experiment(
                api, self.workspace, REGISTER_PROJECT, f"{name} registered with mmm"
            ),
        )
        for file_name, path in files.items():
            self._client.call(what, _logging(experiment.id, name, path, file_name))
        tags = registration_tags(library, owner)
        for _ in range(_REGISTER_TRIES):
            version = next_version(self._version_names(name))
            try:
                self._client.call(
                    what,
                    _registering(
                        experiment, name, version, tags, f"registered with mmm by {actor}"
                    ),
                )
            except TransientError:
                raise
            except PortError:
                if version not in self._version_names(name):
                    raise
                continue  # another registration took this version first: take the next
            return self.get(name, version)
        raise PortError(f"{what}: other registrations kept taking the next version; try again")

    def _version_names(self, name: str) -> list[str]:
        """The versions `name` has in the registry (none when the model is not there)."""
        try:
            entries = self._details(name).get("versions") or []
        except NotFound:
            return []
        return [str(e.get("version")) for e in entries]

    # ------------------------------------------------------------ where a version stands

    def _comet_status(self, status: VersionStatus) -> str | None:
        """The workspace's own status value for `status`, or None when it has none."""
        with self._lock:
            if self._allowed is None:
                allowed = self._client.call(
                    "reading the allowed statuses",
                    lambda api: api.model_registry_allowed_status_values(self.workspace),
                )
                self._allowed = [str(a) for a in allowed or []]
            allowed_now = self._allowed
        wanted = "none" if status is VersionStatus.REGISTERED else status.value
        return next((a for a in allowed_now if a.lower() == wanted), None)

    def set_status(
        self,
        name: str,
        version: str,
        status: VersionStatus,
        actor: str,
        *,
        endpoint: str | None = None,
    ) -> VersionStatus:
        details = self._version_details(name, version)
        tags = tags_of(details)
        previous = status_of(tags)
        others = [s.value for s in STATUS_TAGS if s is not status and s.value in tags]
        add, remove = endpoint_changes(tags, status, endpoint)
        if status is not VersionStatus.REGISTERED and status.value not in tags:
            add.insert(0, status.value)
        remove = others + remove
        if not add and not remove:  # already so: nothing written
            return previous
        what = f"marking {name} {version} {status.value}"
        model = self._client.call(what, lambda api: api.get_model(self.workspace, name))
        # New tags first: a crash between the calls leaves them, and a second call ends it.
        for tag in add:
            self._client.call(what, _tagging(model, version, tag, add=True))
        for tag in remove:
            self._client.call(what, _tagging(model, version, tag, add=False))
        comet_status = self._comet_status(status)
        if comet_status is not None and details.get("status") != comet_status:
            try:
                self._client.call(what, lambda api: model.set_status(version, comet_status))
            except PortError as exc:  # the tags already say it; the status is a courtesy
                log.warning("Comet status of %s %s not set: %s", name, version, exc)
        return previous


def _take_folder(downloaded: Path, wanted: str, dest: Path, what: str) -> Path:
    """Move model folder `wanted` (`model/`) out of a downloaded version into `dest`, whole,
    with its files at their relative paths; a copy fetched there before is replaced."""
    found = downloaded / wanted.rstrip("/")
    if not found.is_dir() or not tree_files(found):
        raise NotFound(f"{what}: Comet sent no folder {wanted}")
    target = dest / found.name
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)  # no file of an earlier fetch may stay
    elif target.exists() or target.is_symlink():
        target.unlink()
    shutil.move(found, target)
    return target


def _logging(key: str, model: str, path: Path, file_name: str) -> Callable[[Any], None]:
    """A call that logs `path` as file `file_name` of `model` to experiment `key`."""
    return lambda api: log_model_file(api, key, model, path, file_name)


def _registering(
    experiment: Any, model: str, version: str, tags: list[str], comment: str
) -> Callable[[Any], None]:
    """A call that registers the model logged to `experiment` as `version` of `model`."""

    def call(api: Any) -> None:
        experiment.register_model(
            model, version=version, registry_name=model, comment=comment, tags=tags
        )

    return call


def _tagging(model: Any, version: str, tag: str, *, add: bool) -> Callable[[Any], None]:
    """A call that adds or removes `tag` on `version` (bound now, not when the loop ends)."""
    if add:
        return lambda api: model.add_tag(version, tag)
    return lambda api: model.delete_tag(version, tag)
