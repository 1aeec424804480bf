"""Where things go: artifact keys, alarm names, generated descriptor paths.

Each is built and parsed here and nowhere else, and parsing is exact: a key
or name made for model `b` never matches model `a-b` (retirement deletes what
these parsers match, so a substring match would delete another model's things).
"""

from __future__ import annotations

from dataclasses import dataclass

ALARM_PREFIX = "mmm/"
_ALARM_SUFFIX = {"error_rate": "error-rate", "p99_latency_ms": "p99-latency"}
_ALARM_METRIC = {v: k for k, v in _ALARM_SUFFIX.items()}


def variant_name(model: str, version: int) -> str:
    return f"{model}-v{version}"


# ---------------------------------------------------------------- artifacts


def artifact_prefix(model: str, version: int | None = None) -> str:
    """Bucket key prefix of a model's files (of one version, or of all)."""
    return f"models/{model}/" if version is None else f"models/{model}/{version}/"


def artifact_key(model: str, version: int, filename: str) -> str:
    return f"{artifact_prefix(model, version)}{filename}"


def parse_artifact_key(key: str) -> tuple[str, int] | None:
    """(model, version) of a key made by `artifact_key`; None for any other key."""
    parts = key.split("/")
    if len(parts) < 4 or parts[0] != "models" or not parts[2].isdigit() or not parts[-1]:
        return None
    return parts[1], int(parts[2])


def uri_key(uri: str) -> str:
    """The key part of "<scheme>://<bucket>/<key>"."""
    return uri.split("://", 1)[-1].split("/", 1)[-1]


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


def descriptor_path(endpoint: str, model: str) -> str:
    """The deployment descriptor codegen writes for `model` on `endpoint`."""
    return f"deploy/{endpoint}/{model}.yaml"


def parse_descriptor_path(path: str) -> tuple[str, str] | None:
    """(endpoint, model) of a path made by `descriptor_path`."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "deploy" or not parts[2].endswith(".yaml"):
        return None
    model = parts[2].removesuffix(".yaml")
    return (parts[1], model) if parts[1] and model else None
