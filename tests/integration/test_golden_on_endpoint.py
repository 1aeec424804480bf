"""The golden check of a model only its serving container loads, made on the endpoint's
candidate variant once provisioned, before any traffic shifts (core.steps.golden), in
process with recording fakes for serving and monitoring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.domain import DeploymentState, EndReason, Library
from core.events import StepSucceeded
from core.machine import plan_of
from core.ports import InvalidInput
from core.service import Service
from tests.integration.conftest import Files, MakeService
from tests.support.container_models import container_golden, torchscript_archive
from tests.support.fakes import RecordingServing

CASES = 3


def answer(instance: dict[str, Any]) -> str:
    """What the golden data expects for a prompt "What is i + i?"."""
    i = int(str(instance["inputs"]).split()[2])
    return str(i + i)


def registered(svc: Service, tmp: Path, versions: int = 1) -> None:
    for v in range(1, versions + 1):
        archive = torchscript_archive(tmp / f"v{v}" / "vision.pt")
        golden = container_golden(tmp / f"v{v}" / "golden.jsonl", cases=CASES)
        svc.register("vision", archive, "pytorch", golden, "cv")


def serving_of(svc: Service) -> RecordingServing:
    serving = svc.ports.serving
    assert isinstance(serving, RecordingServing)
    return serving


def test_the_candidate_answers_its_golden_data_before_traffic_shifts(
    make_service: MakeService, tmp_path: Path
) -> None:
    svc = make_service()
    registered(svc, tmp_path)
    serving = serving_of(svc)
    serving.models["vision-v1"] = answer
    d = svc.deploy("vision", "1", "vision-api")
    assert d.library is Library.PYTORCH
    names = [s.name for s in plan_of(d)]
    assert names.index("create_alarms") + 1 == names.index("check_golden")
    assert names.index("check_golden") < names.index("shift:100")
    d = svc.run(d)
    assert d.state is DeploymentState.SUCCEEDED, d.error
    # one request per case, to the candidate alone
    assert [c[0] for c in serving.calls].count("predict") == CASES
    done = next(e for e in d.events if isinstance(e, StepSucceeded) and e.step == "check_golden")
    assert done.summary == "vision-v1 in local: golden data: 3/3 cases match (tolerance 1e-06)"


def test_a_mismatch_undoes_the_provisioning(make_service: MakeService, tmp_path: Path) -> None:
    svc = make_service()
    registered(svc, tmp_path, versions=2)
    serving = serving_of(svc)
    serving.models["vision-v1"] = answer
    assert svc.run(svc.deploy("vision", "1", "vision-api")).state is DeploymentState.SUCCEEDED
    before = serving.get_endpoint("vision-api", "local")
    alarms_before = svc.ports.monitor.alarms()
    production_before = svc.ports.artifacts.list("production")
    serving.models["vision-v2"] = lambda instance: "forty-two"
    d = svc.run(svc.deploy("vision", "2", "vision-api", "blue-green"))
    assert d.state is DeploymentState.FAILED and d.end_reason is EndReason.ERROR
    assert d.error is not None
    assert d.error.startswith("golden-data check on the endpoint failed: vision-v2 in local:")
    assert "0/3 cases match" in d.error and "first mismatch at line 1" in d.error
    # the candidate got no traffic, and nothing it added is left
    assert serving.get_endpoint("vision-api", "local") == before
    assert svc.ports.monitor.alarms() == alarms_before
    assert svc.ports.artifacts.list("production") == production_before
    assert svc.ports.registry.get("vision", "2").status.value == "registered"


def test_a_case_the_model_refuses_is_a_mismatch_with_its_reason(
    make_service: MakeService, tmp_path: Path
) -> None:
    svc = make_service()
    registered(svc, tmp_path)

    def refuses_two(instance: dict[str, Any]) -> str:
        if "2 + 2" in instance["inputs"]:
            raise InvalidInput("prompt too long for this model")
        return answer(instance)

    serving_of(svc).models["vision-v1"] = refuses_two
    d = svc.run(svc.deploy("vision", "1", "vision-api"))
    assert d.state is DeploymentState.FAILED
    assert d.error is not None and "2/3 cases match" in d.error
    assert 'line 3: expected "4", predict failed: prompt too long' in d.error
    assert serving_of(svc).get_endpoint("vision-api", "local") is None


def test_loaded_models_keep_their_plan(make_service: MakeService, model_files: Files) -> None:
    svc = make_service()
    artifact, golden = model_files(0)
    svc.register("churn", artifact, "sklearn", golden, "risk")
    d = svc.deploy("churn", "1", "churn-scorer")
    assert d.library is Library.SKLEARN
    assert "check_golden" not in [s.name for s in plan_of(d)]
    # a record written before the library was kept reads back with the same plan
    old = type(d).model_validate({k: v for k, v in json.loads(d.model_dump_json()).items()
                                  if k != "library"})  # fmt: skip
    assert old.library is None and plan_of(old) == plan_of(d)
