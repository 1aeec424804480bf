"""Where things go: artifact keys, alarm names, generated code paths, variant names.

Each is built and parsed here and nowhere else, and parsing is exact: a key
or name made for model `b` never matches model `a-b` (retirement deletes what
these parsers match, so a substring match would delete another model's things).
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass

from core.names import SAGEMAKER_NAME, InvalidName, resource_name
from core.versions import check_version, resource_version

ALARM_PREFIX = "mmm/"
_ALARM_SUFFIX = {"error_rate": "error-rate", "p99_latency_ms": "p99-latency"}
_ALARM_METRIC = {v: k for k, v in _ALARM_SUFFIX.items()}


def variant_name(model: str, version: str) -> str:
    """A version's variant on an endpoint; valid as a SageMaker name (core.names), and
    never the same for two (model, version) pairs (core.versions)."""
    return f"{resource_name(model)}-v{resource_version(version)}"


def check_variant(model: str, version: str) -> str:
    """The variant name of a checked model and version, refused (InvalidName) when the two
    together are longer than SageMaker allows: checked before anything is made."""
    name = variant_name(model, version)
    if not SAGEMAKER_NAME.match(name):
        raise InvalidName(
            f"{model} v{version}: its variant name {name!r} is longer than 63 characters; "
            "a shorter model or version name fits"
        )
    return name


# ---------------------------------------------------------------- artifacts


def artifact_prefix(model: str, version: str | None = None) -> str:
    """Bucket key prefix of a model's files (of one version, or of all)."""
    return f"models/{model}/" if version is None else f"models/{model}/{version}/"


def artifact_key(model: str, version: str, filename: str) -> str:
    """The key of a version's file, or of its folder when `filename` ends in `/` (a model
    only its serving container loads, kept whole: an S3 prefix, a folder locally)."""
    return f"{artifact_prefix(model, version)}{filename}"


def artifact_name(uri: str) -> str:
    """The name an artifact's URI ends with, a folder's with its `/` (`.../7/model/` ->
    `model/`): its name under another bucket or version, where it stays a folder."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return f"{name}/" if uri.endswith("/") else name


def parse_artifact_key(key: str) -> tuple[str, str] | None:
    """(model, version) of a key made by `artifact_key` (a file's, or a folder's ending in
    `/`), or of a file inside such a folder; None for any other key."""
    parts = key.split("/")
    # parts[3] is the file or folder name: empty for the version's own prefix (`models/m/1/`)
    if len(parts) < 4 or parts[0] != "models" or not parts[3]:
        return None
    try:
        return parts[1], check_version(parts[2])
    except ValueError:
        return None


def artifact_root(key: str) -> str | None:
    """The key of the whole artifact that stored key `key` is part of: a file right under its
    version is its own; a file inside a folder artifact is part of the folder
    (`models/m/1/model/config.json` -> `models/m/1/model/`). None for a key
    `parse_artifact_key` refuses. A bucket lists objects one by one; usage and retirement
    count and move whole artifacts, so a model folder is never half moved."""
    if parse_artifact_key(key) is None:
        return None
    parts = key.split("/")
    return key if len(parts) == 4 else "/".join(parts[:4]) + "/"


# ---------------------------------------------------------------- alarms


@dataclass(frozen=True)
class AlarmName:
    endpoint: str
    variant: str
    metric: str  # a field name of core.spec.Alarms: error_rate, p99_latency_ms

    def __str__(self) -> str:
        return f"{ALARM_PREFIX}{self.endpoint}/{self.variant}/{_ALARM_SUFFIX[self.metric]}"


def alarm_name(endpoint: str, variant: str, metric: str) -> str:
    return str(AlarmName(endpoint, variant, metric))


def parse_alarm_name(name: str) -> AlarmName | None:
    """The parts of a name made by `alarm_name` ('/' never occurs in a name or variant)."""
    if not name.startswith(ALARM_PREFIX):
        return None
    parts = name[len(ALARM_PREFIX) :].split("/")
    if len(parts) != 3 or parts[2] not in _ALARM_METRIC or not all(parts):
        return None
    return AlarmName(parts[0], parts[1], _ALARM_METRIC[parts[2]])


# ---------------------------------------------------------------- generated code


def endpoint_module(endpoint: str) -> str:
    """The Python module name of an endpoint's client: "churn-scorer" -> "churn_scorer"."""
    name = endpoint.replace("-", "_")
    if not name.isidentifier():  # starts with a digit
        name = f"endpoint_{name}"
    if keyword.iskeyword(name):
        name = f"{name}_"
    return name


def code_paths(endpoint: str, model: str) -> list[str]:
    """The repository paths of `model`'s generated code on `endpoint`: the endpoint's client,
    the model's descriptor, the endpoint's golden test and its cases."""
    module = endpoint_module(endpoint)
    return [
        f"mmm/endpoints/{module}.py",
        descriptor_path(endpoint, model),
        f"tests/mmm/test_{module}_golden.py",
        f"tests/mmm/golden/{endpoint}.jsonl",
    ]


DESCRIPTORS = "deploy/"  # the descriptors of every endpoint, one folder each


def endpoint_code_prefix(endpoint: str) -> str:
    """Where the descriptors of every model on `endpoint` live."""
    return f"{DESCRIPTORS}{endpoint}/"


def descriptor_path(endpoint: str, model: str) -> str:
    """The deployment descriptor codegen writes for `model` on `endpoint`."""
    return f"{endpoint_code_prefix(endpoint)}{model}.yaml"


def parse_descriptor_path(path: str) -> tuple[str, str] | None:
    """(endpoint, model) of a path made by `descriptor_path`."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "deploy" or not parts[2].endswith(".yaml"):
        return None
    model = parts[2].removesuffix(".yaml")
    return (parts[1], model) if parts[1] and model else None
