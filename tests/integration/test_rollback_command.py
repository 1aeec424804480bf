"""`Service.rollback`: back to what served before the endpoint's last successful deployment."""

from __future__ import annotations

from typing import Any

import pytest

from core.domain import DeploymentState
from core.service import BadRequest, PermissionDenied, Service
from tests.integration.conftest import Files, MakeService


def weights(svc: Service, endpoint: str = "churn-scorer") -> dict[str, float]:
    config = svc.ports.serving.get_endpoint(endpoint, "local")
    return {} if config is None else {v.name: v.weight for v in config.variants}


def register(svc: Service, model_files: Files, seed: int) -> None:
    artifact, golden = model_files(seed)
    svc.register("churn", artifact, "sklearn", golden, "risk")


def v1_then_v2(svc: Service, model_files: Files) -> str:
    """v1 deployed, then v2 over it (both succeeded); returns v2's deployment id."""
    register(svc, model_files, 0)
    register(svc, model_files, 1)
    assert svc.run(svc.deploy("churn", "1", "churn-scorer")).state is DeploymentState.SUCCEEDED
    d2 = svc.run(svc.deploy("churn", "2", "churn-scorer"))
    assert d2.state is DeploymentState.SUCCEEDED
    assert weights(svc) == {"churn-v2": 100.0}
    return d2.id


def state(svc: Service) -> dict[str, Any]:
    """What a refused rollback must leave as it was."""
    return {
        "deployments": [(d.id, d.state) for d in svc.deployments()],
        "audit": svc.audit_log(),
        "endpoints": [c.model_dump() for c in svc.ports.serving.endpoints()],
        "statuses": {mv.version: mv.status for mv in svc.ports.registry.versions("churn")},
    }


def refused(svc: Service, match: str, endpoint: str = "churn-scorer") -> None:
    before = state(svc)
    with pytest.raises(BadRequest, match=match):
        svc.rollback(endpoint)
    assert state(svc) == before


def test_rollback_puts_the_previous_version_back_at_full_traffic(
    make_service: MakeService, model_files: Files
) -> None:
    svc = make_service()
    undone = v1_then_v2(svc, model_files)
    d = svc.rollback("churn-scorer")
    assert (d.model, d.version, d.endpoint, d.strategy) == (
        "churn",
        "1",
        "churn-scorer",
        "all-at-once",
    )
    assert d.state is DeploymentState.QUEUED
    final = svc.submit(d)
    assert final.state is DeploymentState.SUCCEEDED
    assert weights(svc) == {"churn-v1": 100.0}
    statuses = {mv.version: mv.status.value for mv in svc.ports.registry.versions("churn")}
    assert statuses == {"1": "production", "2": "archived"}
    [record] = svc.audit_log(d.id)
    assert (record.actor, record.action) == ("alice", "rollback")
    assert record.detail["undoes"] == undone
    assert (record.detail["model"], record.detail["version"]) == ("churn", 1)
    # the rollback is a deployment like any other: rolling back again goes to v2
    again = make_service("bob").rollback("churn-scorer", strategy="blue-green")
    assert (again.version, again.strategy) == ("2", "blue-green")
    assert svc.audit_log(again.id)[0].detail["undoes"] == d.id


def test_refused_without_a_successful_deployment_or_the_right(
    make_service: MakeService, model_files: Files
) -> None:
    svc = make_service()
    refused(svc, "^nothing to roll back: no successful deployment on churn-scorer$")
    register(svc, model_files, 0)
    aborted = svc.run(svc.abort(svc.deploy("churn", "1", "churn-scorer").id))
    assert aborted.state is DeploymentState.ABORTED
    refused(svc, "no successful deployment on churn-scorer")
    mallory = make_service("mallory", {"policy": {"deployers": ["alice"]}})
    with pytest.raises(PermissionDenied, match=r"mallory may not roll back \(policy.deployers\)"):
        mallory.rollback("churn-scorer")


def test_refused_when_the_endpoint_did_not_exist_before(
    make_service: MakeService, model_files: Files
) -> None:
    svc = make_service()
    register(svc, model_files, 0)
    d = svc.run(svc.deploy("churn", "1", "churn-scorer"))
    refused(
        svc,
        f"^nothing to roll back on churn-scorer: it did not exist before {d.id} "
        r"\(churn v1\) created it$",
    )


def test_refused_when_the_previous_version_is_retired_or_gone(
    make_service: MakeService, model_files: Files
) -> None:
    svc = make_service()
    v1_then_v2(svc, model_files)
    retired = svc.run(svc.retire("churn", "1"))
    assert retired.state is DeploymentState.SUCCEEDED
    refused(svc, "^cannot roll back churn-scorer to churn v1: it has been retired$")
    registry: Any = svc.ports.registry
    registry.db.execute("DELETE FROM versions WHERE name = 'churn' AND version = 1")
    refused(svc, "^cannot roll back churn-scorer to churn v1: it is no longer in the registry$")


def test_refused_when_the_previous_version_serves_now(
    make_service: MakeService, model_files: Files
) -> None:
    svc = make_service()
    register(svc, model_files, 0)
    register(svc, model_files, 1)
    svc.run(svc.deploy("churn", "1", "churn-scorer"))
    first = svc.ports.serving.get_endpoint("churn-scorer", "local")
    assert first is not None
    d2 = svc.run(svc.deploy("churn", "2", "churn-scorer"))
    svc.ports.serving.apply(first)  # put back by hand, outside mmm
    refused(
        svc,
        f"^nothing to roll back on churn-scorer: churn v1, which served before {d2.id}, "
        "serves there now$",
    )
