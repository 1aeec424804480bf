"""What a model, endpoint, region or actor name may be: checked once, at the door.

Names travel far: into file and branch names, bucket keys, alarm names,
generated Python and cloud resource names. Each rule below is the one place
that says what passes, so a name accepted at `register` or `deploy` is valid
everywhere it goes later (no late failure after a merge).
"""

from __future__ import annotations

import re

# ASCII only: a model name becomes a file name, a git path and part of resource names.
# Words of letters and digits joined by single '-' or '_': then `resource_name` can spell
# '_' as '--' (SageMaker allows no '_') and no two models ever share a resource name.
# 48 characters (of the resource name) leave room for "-v<version>" in SageMaker's 63.
MODEL_MAX = 48
_MODEL = re.compile(r"^[A-Za-z0-9]+([-_][A-Za-z0-9]+)*$")
# SageMaker's names (models, endpoint configs, endpoints, variants).
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# SageMaker endpoint names, lowercased (they become Python module and file names too).
_ENDPOINT = re.compile(r"^[a-z0-9](-?[a-z0-9]){0,62}$")
# AWS region names ("us-east-1"); locally a region is just such a name ("local").
_REGION = re.compile(r"^[a-z0-9](-?[a-z0-9]){0,31}$")
ACTOR_MAX = 128


class InvalidName(ValueError):
    """A name that would not be valid everywhere it goes; the message is one line."""


def _shown(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def check_model(name: str) -> str:
    if not _MODEL.match(name) or len(resource_name(name)) > MODEL_MAX:
        raise InvalidName(
            f"model {_shown(name)}: use ASCII letters and digits in words joined by single "
            f"'-' or '_', at most {MODEL_MAX} characters (each '_' counts as two)"
        )
    return name


def resource_name(model: str) -> str:
    """The model's name where '_' may not go (SageMaker): '_' spelled '--'. One-to-one on
    names `check_model` accepts, whose separators are single: `churn_model` and
    `churn-model` become `churn--model` and `churn-model`."""
    return model.replace("_", "--")


def check_endpoint(name: str) -> str:
    if not _ENDPOINT.match(name):
        raise InvalidName(
            f"endpoint {_shown(name)}: use lowercase letters, digits and single dashes, "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return name


def check_region(name: str) -> str:
    if not _REGION.match(name):
        raise InvalidName(
            f"region {_shown(name)}: use lowercase letters, digits and dashes "
            "(like us-east-1), at most 32 characters"
        )
    return name


def check_actor(name: str) -> str:
    """Who acts: any printable text (people's names), never control characters, which
    could forge lines in logs and the audit history."""
    if not name or len(name) > ACTOR_MAX or not name.isprintable() or name != name.strip():
        raise InvalidName(
            f"user name {_shown(name)}: 1 to {ACTOR_MAX} printable characters, "
            "no control characters or surrounding spaces"
        )
    return name
