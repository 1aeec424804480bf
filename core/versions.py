"""A model version as its registry names it: "3" in the local registry, "1.1.0" in Comet's.

Versions are text everywhere in the core, compared and sorted the registries' way
(numbers as numbers, a pre-release before its release), and shown in JSON as the
registry names them: an integer where the name is a plain number (the local registry,
as before), a string otherwise.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from core.names import InvalidName

VERSION_MAX = 32
# The version of a retirement of every version of a model (no registry names a version 0).
EVERY_VERSION = "0"
# Words of letters and digits joined by single '.', '-' or '+' (semantic versions, "3").
_VERSION = re.compile(r"^[A-Za-z0-9]+([.+-][A-Za-z0-9]+)*$")
# In resource names a separator becomes a run of dashes longer than any in a model's
# resource name before it ("-v" joins them with a single dash), so "<model>-v<version>"
# splits one way only: `a-v1` v`2` and `a` v`1.v2` never share a variant.
_SPELLED = {".": "--", "-": "---", "+": "----"}


def check_version(text: str) -> str:
    """`text` if it may name a version; InvalidName (one line) otherwise."""
    if len(text) > VERSION_MAX or not _VERSION.match(text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise InvalidName(
            f"version {shown!r}: use letters and digits joined by single '.', '-' or '+' "
            f"(like 3 or 1.1.0), at most {VERSION_MAX} characters"
        )
    return text


def resource_version(version: str) -> str:
    """The version where only letters, digits and '-' may go (SageMaker variant names)."""
    return re.sub(r"[.+-]", lambda m: _SPELLED[m.group(0)], version)


def sort_key(version: str) -> tuple[Any, ...]:
    """Orders versions as registries do: numbers numerically (2 before 10), then a
    pre-release (`1.0.0-rc1`) before its release; build metadata (`+...`) is ignored."""
    core, _, _build = version.partition("+")
    release, dash, pre = core.partition("-")

    def parts(text: str) -> tuple[tuple[int, int, str], ...]:
        return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in text.split("."))

    return (parts(release), 0 if dash else 1, parts(pre) if dash else ())


def shown(version: str) -> int | str:
    """The version as JSON shows it: an integer for a plain number, else the text."""
    return int(version) if version.isdigit() and (version == "0" or version[0] != "0") else version


def _from_json(value: object) -> object:
    # Records and JSON written with integer versions (the local registry) read back as text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# The type of every `version` field: text in Python, as the registry names it in JSON.
Version = Annotated[str, BeforeValidator(_from_json), PlainSerializer(shown, when_used="json")]
