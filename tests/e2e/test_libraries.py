"""Every standard runtime through the whole pipeline: xgboost and ONNX deploy and serve like sklearn."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.bootstrap import build_service
from core.domain import Library
from core.gateway.app import create_app
from core.gateway.client import invoke
from core.gateway.engine import GatewayOptions
from core.gateway.server import GatewayServer
from core.runtime import load_model
from core.service import Service
from tests.e2e.conftest import Workspace
from tests.support.models import sample_instances, train_onnx, train_xgboost, write_golden

TRAINERS: dict[str, Callable[[Path], Path]] = {
    "xgboost": lambda d: train_xgboost(d, kind="binary"),
    "onnx": lambda d: train_onnx(d, kind="classifier"),
}


# scikit-learn serves in most end-to-end tests of `make test`; the other libraries through
# the command in `make test-slow` (each loads in-process in tests/unit/test_runtime.py).
@pytest.mark.parametrize(
    "library",
    [
        lib if lib == "sklearn" else pytest.param(lib, marks=pytest.mark.slow)
        for lib in sorted(TRAINERS)
    ],
)
def test_library_deploys_and_serves(ws: Workspace, library: str) -> None:
    artifact = TRAINERS[library](ws.models)
    golden = write_golden(artifact, Library(library), ws.models)
    ws.ok(
        "register",
        "clf",
        "--artifact",
        str(artifact),
        "--library",
        library,
        "--golden",
        str(golden),
    )
    d = ws.ok("deploy", "clf", "1", "--endpoint", f"clf-{library}", "--json").json()
    assert d["state"] == "succeeded", d["error"]
    run_checks = next(
        e for e in d["events"] if e.get("step") == "run_checks" and e["type"] == "step_succeeded"
    )
    assert "1 passed" in run_checks["summary"]  # the generated golden test ran on this library
    # the gateway serves the production artifact through the same runtime
    svc: Service = build_service(ws.home, "tester")
    model = load_model(artifact, Library(library))
    rows = sample_instances(model.n_features or 0, 5)
    options = GatewayOptions(resolve=svc.ports.artifacts.local_path)
    with GatewayServer(create_app(ws.home, options), 0) as server:
        answer = invoke(server.url, f"clf-{library}", {"instances": rows})
    assert answer["variant"] == "clf-v1"
    assert answer["predictions"] == model.predict(rows)
