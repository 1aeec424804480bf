"""The operations a model child runs, each in a fork of the zygote (`core.runtime.zygote`).

Operations (`"op"`):

- `check`: load an artifact, read its golden data, check every golden input fits
  the model (`core.checks.check_artifact`); the result is the number of cases;
- `replay`: inputs through an endpoint's production variants and its shadow,
  captured as the gateway captures them (`core.adapters.local.serving.LocalServing.replay`).

Each operation imports what it needs when it runs (in the zygote, already
imported); `answer_to` turns its result, or the port error it raised, into the
answer document of `core.runtime.child_protocol`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.ports import PortError
from core.runtime.child_protocol import ERRORS, one_line

__all__ = ["OPERATIONS", "answer_to"]


def _check(request: dict[str, Any]) -> int:
    from core.checks import golden_fit
    from core.runtime.golden import read_golden
    from core.runtime.loaders import load_model

    model = load_model(Path(request["artifact"]), request["library"])
    if request.get("golden") is None:
        return 0
    golden = Path(request["golden"])
    cases = read_golden(golden)
    golden_fit(model, cases, golden.name)
    return len(cases)


def _replay(request: dict[str, Any]) -> int:
    from core.adapters.local.serving import replay_inline
    from core.ports import EndpointConfig

    paths: dict[str, str] = request["paths"]
    unresolved: dict[str, list[str]] = request["unresolved"]

    def resolve(uri: str) -> Path:
        if uri in paths:
            return Path(paths[uri])
        kind, message = unresolved.get(uri, ["NotFound", f"{uri}: not resolved"])
        raise ERRORS.get(kind, PortError)(message)

    return replay_inline(
        Path(request["home"]),
        EndpointConfig.model_validate(request["config"]),
        resolve,
        [(str(request_id), instance) for request_id, instance in request["requests"]],
        int(request["seed"]),
        int(request["capture_max_lines"]),
    )


OPERATIONS = {"check": _check, "replay": _replay}


def answer_to(request: dict[str, Any]) -> dict[str, Any]:
    op = OPERATIONS.get(str(request.get("op")))
    if op is None:
        return {"ok": False, "kind": "PortError", "error": f"unknown operation {request.get('op')}"}
    try:
        return {"ok": True, "result": op(request)}
    except PortError as exc:
        kind = next((k for k, cls in ERRORS.items() if isinstance(exc, cls)), "PortError")
        return {"ok": False, "kind": kind, "error": one_line(str(exc), 1000)}
    except Exception as exc:  # a bug, or a model raising where no loader catches it
        return {
            "ok": False,
            "kind": "PortError",
            "error": one_line(f"{type(exc).__name__}: {exc}"),
        }
