"""Versions as the registry names them ("1.1.0") through the whole local pipeline."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

from core.adapters.local.registry import LocalRegistry
from core.bootstrap import build_ports, build_store, init_workspace
from core.domain import DeploymentState, Library
from core.names import SAGEMAKER_NAME
from core.service import Service
from tests.support.models import train_sklearn_regressor, write_golden
from tests.support.named_versions import NamedVersionsRegistry


def test_a_comet_style_version_deploys_serves_rolls_back_and_retires(tmp_path: Path) -> None:
    ws, _ = init_workspace(tmp_path / "ws")
    ports = dataclasses.replace(
        build_ports(ws),
        registry=NamedVersionsRegistry(LocalRegistry(ws.home / "registry"), ["1.0.0", "1.1.0"]),
    )
    svc = Service(ws, build_store(ws), ports, "alice")
    for seed in (0, 1):
        artifact = train_sklearn_regressor(tmp_path / f"m{seed}", seed=seed)
        golden = write_golden(artifact, Library.SKLEARN, tmp_path / f"m{seed}")
        assert svc.register("churn_model", artifact, "sklearn", golden, "risk").version == (
            f"1.{seed}.0"
        )

    first = svc.run(svc.deploy("churn_model", "1.0.0", "churn"))
    assert first.state is DeploymentState.SUCCEEDED, first.shown_error
    assert first.public()["version"] == "1.0.0"  # JSON names it as the registry does
    second = svc.run(svc.deploy("churn_model", "1.1.0", "churn"))
    assert second.state is DeploymentState.SUCCEEDED, second.shown_error

    sites = svc.usage("churn_model")
    assert {s.version for s in sites} == {"1.0.0", "1.1.0"}  # 1.0.0: archived files, alarms
    serving = [s for s in sites if s.kind.value == "endpoint"]
    assert [(s.version, s.detail["variant"]) for s in serving] == [
        ("1.1.0", "churn--model-v1--1--0")
    ]
    for site in sites:
        if site.kind.value == "monitor":
            assert SAGEMAKER_NAME.match(site.location.split("/")[2])
        if site.kind.value == "artifact":
            assert "/models/churn_model/1." in site.location
    descriptor = yaml.safe_load(ports.codehost.read("deploy/churn/churn_model.yaml") or "")
    assert descriptor["model"]["version"] == "1.1.0"
    assert [m["version"] for m in svc.models()[0]["versions"]] == ["1.0.0", "1.1.0"]
    assert ports.registry.get("churn_model", "1.1.0").status.value == "production"

    back = svc.run(svc.rollback("churn"))
    assert (back.version, back.state) == ("1.0.0", DeploymentState.SUCCEEDED)
    retired = svc.run(svc.retire("churn_model", "1.1.0"))
    assert retired.state is DeploymentState.SUCCEEDED, retired.shown_error
    assert {s.version for s in svc.usage("churn_model", "1.1.0")} == set()
    assert ports.registry.get("churn_model", "1.1.0").status.value == "retired"
    audit = [json.loads(json.dumps(r.detail)) for r in svc.audit_log(limit=10)]
    assert {"versions": ["1.1.0"]}.items() <= next(a for a in audit if "versions" in a).items()
