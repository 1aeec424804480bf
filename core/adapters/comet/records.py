"""How a Comet registry version reads as a `ModelVersion`, and how mmm marks it there.

A version's assets hold one model file and, optionally, `golden.jsonl`. The model's
library is told by a tag `library:LIB`, else by the file's suffix. A version of a library
only its serving container loads (tagged `library:huggingface` or `library:pytorch`) holds
its model folder instead, as comet_ml's `log_model` logs a folder: every file under one top
folder (`model/config.json`, `model/model.safetensors`, ...), named `model/` on the version,
and fetched whole; a pytorch version may hold one `*.pt` file instead. Where a version stands
is told by tags mmm owns (`staging`, `production`, `archived`, `retired`), which every
workspace accepts, and by `endpoint:NAME` tags naming the endpoints it stands on; the
Comet status is set too where the workspace allows that value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from core.container_models import weights_format
from core.domain import Library, ModelVersion, VersionStatus, iso
from core.ports import InvalidInput

GOLDEN = "golden.jsonl"
LIBRARY_TAG = "library:"
OWNER_TAG = "owner:"
# Files comet_ml writes beside a logged model: never the model itself.
_NOT_MODELS = frozenset({GOLDEN, "model_metadata.json", "metadata.json", "requirements.txt"})
_FORMATS = {
    ".joblib": "joblib",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".json": "json",
    ".ubj": "ubj",
    ".onnx": "onnx",
}
# The file extension of each format: a registered model file is `model<extension>`.
SUFFIX_OF_FORMAT = {
    "joblib": ".joblib",
    "pickle": ".pkl",
    "json": ".json",
    "ubj": ".ubj",
    "onnx": ".onnx",
    "torchscript": ".pt",  # a pytorch archive registered alone
}
# A model folder, registered as `MODEL_FOLDER/<its files' relative paths>`.
MODEL_FOLDER = "model/"
_LIBRARY_OF_FORMAT = {
    "joblib": Library.SKLEARN,
    "pickle": Library.SKLEARN,
    "json": Library.XGBOOST,
    "ubj": Library.XGBOOST,
    "onnx": Library.ONNX,
}
# The tags that say where a version stands; when several are there, the later one wins.
STATUS_TAGS = (
    VersionStatus.STAGING,
    VersionStatus.PRODUCTION,
    VersionStatus.ARCHIVED,
    VersionStatus.RETIRED,
)


ENDPOINT_TAG = "endpoint:"
# Statuses of a version that stands on an endpoint (tagged `endpoint:NAME` there).
_ON_ENDPOINT = frozenset({VersionStatus.STAGING, VersionStatus.PRODUCTION})
# Statuses of a version that serves nowhere: mmm archives a version only once it is off
# its last endpoint, and a retirement takes it off all of them.
_NOWHERE = frozenset({VersionStatus.ARCHIVED, VersionStatus.RETIRED})


_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")
FIRST_VERSION = "1.0.0"


def next_version(versions: list[str]) -> str:
    """The version a new registration gets: 1.0.0 first, then the next minor version
    after the highest one (1.0.0, 1.1.0 -> 1.2.0; 2.0.3 -> 2.1.0). Versions that are not
    semantic versions are passed over; a pre-release counts as its release."""
    found = [m for m in (_RELEASE.match(v) for v in versions) if m is not None]
    if not found:
        return FIRST_VERSION
    major, minor = max((int(m.group(1)), int(m.group(2))) for m in found)
    return f"{major}.{minor + 1}.0"


def registration_tags(library: Library, owner: str | None) -> list[str]:
    """The tags a version registered through mmm carries: its library and its owner."""
    return [f"{LIBRARY_TAG}{library.value}"] + ([f"{OWNER_TAG}{owner}"] if owner else [])


def endpoint_tag(endpoint: str) -> str:
    return f"{ENDPOINT_TAG}{endpoint}"


def endpoint_changes(
    tags: list[str], status: VersionStatus, endpoint: str | None
) -> tuple[list[str], list[str]]:
    """The endpoint tags to add and to remove when a version goes to `status` about
    `endpoint`: staging or production adds `endpoint:NAME`; registered (an undone
    deployment) removes it; archived or retired removes every endpoint tag. Without an
    endpoint, only archived and retired change them."""
    if status in _NOWHERE:
        return [], [t for t in tags if t.startswith(ENDPOINT_TAG)]
    if endpoint is None:
        return [], []
    tag = endpoint_tag(endpoint)
    if status in _ON_ENDPOINT:
        return ([] if tag in tags else [tag]), []
    return [], ([tag] if tag in tags else [])


def status_of(tags: list[str]) -> VersionStatus:
    """The mmm status a version's tags say (registered when none does)."""
    found = [s for s in STATUS_TAGS if s.value in tags]
    return found[-1] if found else VersionStatus.REGISTERED


def tags_of(details: dict[str, Any]) -> list[str]:
    raw = details.get("tags")
    if raw is None:
        raw = details.get("stages")  # older servers call tags "stages"
    return [str(t) for t in raw or []]


def _tag_value(tags: list[str], prefix: str) -> str | None:
    return next((t.removeprefix(prefix) for t in tags if t.startswith(prefix)), None)


def model_file(model: str, version: str, files: list[str]) -> str:
    """The one asset that is the model; InvalidInput when there is none or more than one."""
    candidates = [
        f
        for f in files
        if PurePosixPath(f).name not in _NOT_MODELS and PurePosixPath(f).suffix.lower() in _FORMATS
    ]
    if len(candidates) != 1:
        listed = ", ".join(sorted(files)) or "no files"
        what = "no model file" if not candidates else "more than one model file"
        raise InvalidInput(
            f"{model} {version} in Comet has {what} ({listed}); a version holds one model "
            f"file ({', '.join(sorted(_FORMATS))}) and optionally {GOLDEN}"
        )
    return candidates[0]


def _tagged_library(model: str, version: str, tags: list[str]) -> Library | None:
    tagged = _tag_value(tags, LIBRARY_TAG)
    if tagged is None:
        return None
    try:
        return Library(tagged)
    except ValueError:
        known = ", ".join(x.value for x in Library)
        raise InvalidInput(
            f"{model} {version} in Comet: tag {LIBRARY_TAG}{tagged}: unknown library "
            f"(known: {known})"
        ) from None


def library_of(model: str, version: str, filename: str, tags: list[str]) -> Library:
    tagged = _tagged_library(model, version, tags)
    if tagged is not None:
        return tagged
    return _LIBRARY_OF_FORMAT[_FORMATS[PurePosixPath(filename).suffix.lower()]]


def container_artifact(
    model: str, version: str, library: Library, files: list[str]
) -> tuple[str, str]:
    """(artifact, format) of a version of a library only its serving container loads: its
    model folder, the one top folder its files lie in, named with its `/` (`model/`); or,
    for pytorch, its one `*.pt` file. Comet keeps a folder's files by their paths, so only
    their names are read here: the files themselves are checked once fetched (validate).
    InvalidInput, in one line, for any other layout."""
    tops = sorted({f.split("/", 1)[0] + "/" for f in files if "/" in f})
    loose = [f for f in files if "/" not in f and f not in _NOT_MODELS]
    archives = [f for f in loose if f.lower().endswith(".pt")]
    if len(tops) == 1 and not archives:
        inside = [f.removeprefix(tops[0]) for f in files if f.startswith(tops[0])]
        if library is Library.PYTORCH:
            return tops[0], "torchscript"
        fmt = weights_format(n for n in inside if "/" not in n)
        if fmt is not None:
            return tops[0], fmt
    elif library is Library.PYTORCH and not tops and len(archives) == 1:
        return archives[0], "torchscript"
    listed = ", ".join(sorted(files)) or "no files"
    folder = (
        f"its model folder (its files under one folder, {MODEL_FOLDER}..., as comet_ml's "
        "log_model logs a folder" + (")" if library is Library.PYTORCH else ", with weights)")
    )
    held = f"one *.pt file or {folder}" if library is Library.PYTORCH else folder
    raise InvalidInput(
        f"{model} {version} in Comet ({LIBRARY_TAG}{library}) has {listed}; a {library} "
        f"version holds {held} and optionally {GOLDEN}"
    )


def _created_at(details: dict[str, Any]) -> str:
    millis = details.get("createdAt")
    if isinstance(millis, int | float) and millis > 0:
        return iso(datetime.fromtimestamp(millis / 1000, tz=UTC))
    return ""


def model_version(workspace: str, model: str, details: dict[str, Any]) -> ModelVersion:
    """The `ModelVersion` of one entry of `registry-model/details`' versions."""
    version = str(details["version"])
    tags = tags_of(details)
    files = [str(a.get("fileName", "")) for a in details.get("assets") or []]
    tagged = _tagged_library(model, version, tags)
    if tagged is not None and tagged.container_only:
        library = tagged
        artifact, fmt = container_artifact(model, version, library, files)
    else:
        artifact = model_file(model, version, files)
        library = library_of(model, version, artifact, tags)
        fmt = _FORMATS[PurePosixPath(artifact).suffix.lower()]
    return ModelVersion(
        name=model,
        version=version,
        library=library,
        format=fmt,
        artifact=artifact,
        golden=GOLDEN if GOLDEN in files else None,
        owner=_tag_value(tags, OWNER_TAG),
        status=status_of(tags),
        registry_ref=f"comet:{workspace}/{model}@{version}",
        created_by=str(details.get("userName") or ""),
        created_at=_created_at(details),
        # Comet keeps no checksum of an asset; the staged copy is what mmm checks and serves.
        sha256="",
    )
