"""Files mmm writes into the consuming repository for one model on one endpoint.

Per endpoint and model, codegen owns exactly the paths of `managed_paths`:

| path | what |
|---|---|
| `mmm/endpoints/<module>.py` | a typed client of the endpoint (standard library only) |
| `deploy/<endpoint>/<model>.yaml` | the IaC description of the model and the endpoint |
| `tests/mmm/test_<module>_golden.py` | a pytest check: the candidate reproduces the golden data |
| `tests/mmm/golden/<endpoint>.jsonl` | the golden cases it reads |

The two test paths are written only when the version has golden data. For a
model only its serving container loads (`Library.container_only`), nothing
beside mmm's checks can load it: its golden test is skipped, saying why, and
the descriptor says `verification.golden_on: endpoint` (the golden data is
checked on its variant once provisioned, before traffic shifts: `core.steps.golden`);
otherwise `golden_on: tests`. The output depends on the context alone (no
clock, no host names), so rendering the same context twice gives the same
bytes and an unchanged change.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import BaseModel, ConfigDict

from core.domain import Library
from core.layout import code_paths, endpoint_module
from core.names import InvalidName, check_endpoint, check_model
from core.ports import InvalidInput
from core.spec import DeploymentSpec
from core.versions import Version, shown

__all__ = [
    "GATEWAY_ENV",
    "GOLDEN_ON_ENDPOINT",
    "GOLDEN_ON_TESTS",
    "CodegenContext",
    "endpoint_checked_test",
    "endpoint_module",
    "golden_on",
    "managed_paths",
    "render_change",
    "render_files",
]

GATEWAY_ENV = "MMM_GATEWAY_URL"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080"

# Where a version's golden data is checked (the descriptor's `verification.golden_on`; a
# descriptor without the key was written before it existed: by the tests).
GOLDEN_ON_TESTS = "tests"
GOLDEN_ON_ENDPOINT = "endpoint"


class CodegenContext(BaseModel):
    """Everything one rendering needs; the same context always renders the same files."""

    model_config = ConfigDict(frozen=True)

    endpoint: str
    model: str
    version: Version
    library: Library
    artifact_uri: str  # a local file path in the embedded default, else a URI (s3://...)
    golden_cases_jsonl: str | None = None
    spec: DeploymentSpec
    deployment_id: str
    generated_at: str  # ISO time, passed in so that output stays deterministic


def _check_names(endpoint: str, model: str) -> None:
    try:
        check_endpoint(endpoint)
        check_model(model)
    except InvalidName as exc:
        raise InvalidInput(str(exc)) from None


def _class_name(module: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in module.split("_") if part) + "Client"


def managed_paths(endpoint: str, model: str) -> list[str]:
    """Every repository path codegen may write for `model` on `endpoint` (retirement removes
    them); refuses names that could not be paths."""
    _check_names(endpoint, model)
    return code_paths(endpoint, model)


# ---------------------------------------------------------------- filters


def _py(value: Any) -> str:
    """A Python literal of a plain value, strings double-quoted as formatters write them."""
    if isinstance(value, str):
        # JSON string escapes are Python string escapes too.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    raise TypeError(f"no Python literal for {type(value).__name__}")


_PLAIN = re.compile(r"^[A-Za-z_/.][A-Za-z0-9_./-]*$")


def _reads_back(text: str) -> bool:
    try:  # "..." and "---" end or start a document: not even a value
        return bool(yaml.safe_load(text) == text)
    except yaml.YAMLError:
        return False


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, str):
        # Plain only when it cannot be read back as anything else (true, null, 1.0, ...).
        if _PLAIN.match(value) and _reads_back(value):
            return value
        return '"' + "".join(_yaml_char(c) for c in value) + '"'
    if isinstance(value, bool | int | float) or value is None:
        # YAML's own writer spells numbers so that YAML reads them back (1.0e-06, .inf, null).
        text: str = yaml.safe_dump(value)
        return text.split("\n", 1)[0]
    raise TypeError(f"no YAML value for {type(value).__name__}")


def _yaml_char(c: str) -> str:
    if c in '\\"':
        return "\\" + c
    if " " <= c <= "~":
        return c
    # Everything else escaped: YAML takes line breaks beyond \n (U+0085, U+2028) literally.
    return f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"


def _yaml(value: Any) -> str:
    """A one-line YAML value: flow style for collections, keys sorted."""
    if isinstance(value, dict):
        items = (f"{_yaml_scalar(k)}: {_yaml(v)}" for k, v in sorted(value.items()))
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return _yaml_scalar(value)


def _comment(value: Any) -> str:
    """Text safe inside a one-line comment."""
    return " ".join(str(value).split())


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("core.codegen", "templates"),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["py"] = _py
    env.filters["yaml"] = _yaml
    env.filters["comment"] = _comment
    env.filters["json"] = lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False)
    env.filters["shown"] = shown  # a version as its registry names it: 3 or "1.1.0"
    return env


_ENV: Environment | None = None


def _templates() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV


# ---------------------------------------------------------------- rendering


def _golden_text(ctx: CodegenContext) -> str | None:
    text = ctx.golden_cases_jsonl
    if text is None or not text.strip():
        return None
    return text if text.endswith("\n") else text + "\n"


def golden_on(library: Library) -> str:
    """Where golden data of a `library` model is checked: by the generated test, which loads
    the model; or, for one only its serving container loads, on the endpoint."""
    return GOLDEN_ON_ENDPOINT if Library(library).container_only else GOLDEN_ON_TESTS


def endpoint_checked_test(
    *,
    deployment_id: str,
    generated_at: str,
    endpoint: str,
    model: str,
    version: str,
    library: str,
) -> str:
    """The golden test of a model whose golden data is checked on the endpoint: skipped, with
    the reason, needing nothing but pytest. The same text on every code host (rendered from
    the context here, from the descriptor in `core.codegen.standalone`)."""
    return (
        _templates()
        .get_template("test_golden_on_endpoint.py.j2")
        .render(
            deployment_id=deployment_id,
            generated_at=generated_at,
            endpoint=endpoint,
            model=model,
            version=version,
            library=library,
        )
    )


def render_files(ctx: CodegenContext) -> dict[str, str]:
    """Repository path -> content of every file for this context (see the module doc)."""
    client_path, iac_path, test_path, golden_path = managed_paths(ctx.endpoint, ctx.model)
    module = endpoint_module(ctx.endpoint)
    golden = _golden_text(ctx)
    container_only = ctx.library.container_only
    values: dict[str, Any] = {
        "ctx": ctx,
        "spec": ctx.spec,
        "module": module,
        "class_name": _class_name(module),
        "library": ctx.library.value,
        "container_only": container_only,
        "instance_type": "Instance" if container_only else "Sequence[float]",
        "golden_on": golden_on(ctx.library) if golden is not None else None,
        "gateway_env": GATEWAY_ENV,
        "default_gateway_url": DEFAULT_GATEWAY_URL,
        "timeout_s": ctx.spec.timeouts.invocation_ms / 1000,
        "iac_path": iac_path,
        "golden_path": golden_path if golden is not None else None,
        "autoscaling": ctx.spec.autoscaling.model_dump() if ctx.spec.autoscaling else None,
        "strategy": ctx.spec.strategy.model_dump(mode="json"),
        "instance": ctx.spec.instance.model_dump(),
        "timeouts": ctx.spec.timeouts.model_dump(),
    }
    templates = _templates()
    files = {
        client_path: templates.get_template("client.py.j2").render(values),
        iac_path: templates.get_template("deployment.yaml.j2").render(values),
    }
    if golden is not None and container_only:
        files[test_path] = endpoint_checked_test(
            deployment_id=ctx.deployment_id,
            generated_at=ctx.generated_at,
            endpoint=ctx.endpoint,
            model=ctx.model,
            version=str(ctx.version),
            library=ctx.library.value,
        )
        files[golden_path] = golden  # the cases the descriptor names, as for any model
    elif golden is not None:
        # The test finds its golden file by name; keep the two paths in one place.
        values["golden_name"] = PurePosixPath(golden_path).name
        files[test_path] = templates.get_template("test_golden.py.j2").render(values)
        files[golden_path] = golden
    return files


def render_change(ctx: CodegenContext) -> tuple[dict[str, str], list[str]]:
    """The files to write and the managed paths to delete (a test left from golden data now gone)."""
    files = render_files(ctx)
    stale = [p for p in managed_paths(ctx.endpoint, ctx.model) if p not in files]
    return files, stale
