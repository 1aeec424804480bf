"""A deployment to several regions rolls out in waves (core.plan): region by region, or
step by step across regions; a failure in a later region undoes every region."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.domain import DeploymentState
from core.events import StepSucceeded
from core.ports import EndpointConfig, PortError
from core.service import Service
from tests.integration.conftest import Files, MakeService, register_two
from tests.support.fakes import RecordingServing

REGIONS = ["eu-1", "us-1"]


def deployment_file(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / f"waves-{len(list(tmp_path.glob('waves-*')))}.yaml"
    spec = {"regions": REGIONS, "strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 0}}
    path.write_text(yaml.safe_dump({**spec, **extra}))
    return path


def done_steps(d: Any) -> list[str]:
    return [e.step for e in d.events if isinstance(e, StepSucceeded)]


def served(svc: Service) -> dict[str, list[tuple[str, float]]]:
    out = {}
    for region in REGIONS:
        config = svc.ports.serving.get_endpoint("churn-live", region)
        out[region] = [(v.name, v.weight) for v in config.variants] if config else []
    return out


def test_the_second_region_starts_when_the_first_has_finished(
    make_service: MakeService, model_files: Files, tmp_path: Path
) -> None:
    svc = make_service()
    register_two(svc, model_files)
    d = svc.run(svc.deploy("churn", "1", "churn-live", file=deployment_file(tmp_path)))
    assert d.state is DeploymentState.SUCCEEDED, d.error
    steps = done_steps(d)
    eu = [s for s in steps if s.endswith("@eu-1")]
    us = [s for s in steps if s.endswith("@us-1")]
    assert eu == ["create_variant@eu-1", "create_alarms@eu-1", "shift:50@eu-1", "shift:100@eu-1"]
    assert us == [s.replace("eu-1", "us-1") for s in eu]
    assert steps.index(eu[-1]) < steps.index(us[0])  # the whole first wave, then the second
    # code, checks, the copy and the registry once
    assert [s for s in steps if "@" not in s] == [
        "validate", "open_change", "run_checks", "merge_change", "copy_artifact",
        "mark_staging", "drain_old", "mark_production",
    ]  # fmt: skip
    assert served(svc) == {"eu-1": [("churn-v1", 100.0)], "us-1": [("churn-v1", 100.0)]}
    assert {a["region"] for a in d.context.alarms} == set(REGIONS)
    assert {e["region"] for e in d.context.endpoints} == set(REGIONS)
    # every usage site of a region says which: the endpoint and the alarms of each
    sites = {(s.kind.value, s.region) for s in svc.usage("churn") if s.region}
    assert sites == {(kind, r) for kind in ("endpoint", "monitor") for r in REGIONS}

    # waves: step takes each traffic step in every region before the next
    file = deployment_file(tmp_path, waves="step")
    d2 = svc.run(svc.deploy("churn", "2", "churn-live", file=file))
    assert d2.state is DeploymentState.SUCCEEDED, d2.error
    shifts = [s for s in done_steps(d2) if s.startswith("shift:")]
    assert shifts == ["shift:50@eu-1", "shift:50@us-1", "shift:100@eu-1", "shift:100@us-1"]
    assert served(svc) == {"eu-1": [("churn-v2", 100.0)], "us-1": [("churn-v2", 100.0)]}


class FailsIn(RecordingServing):
    """Serving whose changes in one region fail once it has served `after` changes there."""

    def __init__(self, region: str, after: int = 0) -> None:
        super().__init__()
        self.region, self.after = region, after

    def apply(self, config: EndpointConfig) -> EndpointConfig | None:
        if config.region == self.region:
            if self.after == 0:
                raise PortError(f"capacity: no ml.m5.large left in {self.region}")
            self.after -= 1
        return super().apply(config)


def test_a_failure_in_the_second_region_undoes_both(
    make_service: MakeService, model_files: Files, tmp_path: Path
) -> None:
    svc = make_service()
    register_two(svc, model_files)
    assert svc.run(svc.deploy("churn", "1", "churn-live", file=deployment_file(tmp_path))).state \
        is DeploymentState.SUCCEEDED  # fmt: skip
    before, alarms = served(svc), svc.ports.monitor.alarms()
    failing = FailsIn("us-1")
    for region in REGIONS:  # what serves now, in the failing serving
        config = svc.ports.serving.get_endpoint("churn-live", region)
        assert config is not None
        RecordingServing.apply(failing, config)
    svc.ports.serving = failing
    d = svc.run(svc.deploy("churn", "2", "churn-live", file=deployment_file(tmp_path)))
    assert d.state is DeploymentState.FAILED
    assert d.error == "create_variant@us-1: capacity: no ml.m5.large left in us-1"
    steps = done_steps(d)
    assert "shift:100@eu-1" in steps  # the first region had gone all the way
    assert served(svc) == before  # and both are back
    assert svc.ports.monitor.alarms() == alarms
    assert svc.ports.registry.get("churn", "2").status.value == "registered"
