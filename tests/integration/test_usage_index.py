"""The usage index follows every change of where a model is used."""

from __future__ import annotations

from core.domain import DeploymentState, UsageSite
from core.usage import sites_of
from tests.integration.conftest import Files, MakeService, register_two


def keys(sites: list[UsageSite]) -> set[tuple[str, str, int]]:
    return {(s.kind.value, s.location, s.version) for s in sites}


def test_the_worker_keeps_the_usage_index_as_the_systems_say(
    make_service: MakeService, model_files: Files
) -> None:
    svc = make_service()
    register_two(svc, model_files, "churn_model")
    assert svc.store.usage_index("churn_model") == []

    assert svc.run(svc.deploy("churn_model", "1", "churn")).state is DeploymentState.SUCCEEDED
    indexed = svc.store.usage_index("churn_model")
    assert keys(indexed) == keys(sites_of(svc.ports, "churn_model"))
    assert ("endpoint", "churn", "1") in keys(indexed)
    variant = next(s.detail["variant"] for s in indexed if s.kind.value == "endpoint")
    assert variant == "churn--model-v1"  # '_' has no place in a SageMaker name

    assert svc.run(svc.deploy("churn_model", "2", "churn")).state is DeploymentState.SUCCEEDED
    indexed = svc.store.usage_index("churn_model")
    assert keys(indexed) == keys(sites_of(svc.ports, "churn_model"))
    assert ("endpoint", "churn", "1") not in keys(indexed)  # drained off the endpoint

    assert svc.run(svc.retire("churn_model", "1")).state is DeploymentState.SUCCEEDED
    assert keys(svc.store.usage_index("churn_model")) == keys(sites_of(svc.ports, "churn_model"))
    assert all(s.version == "2" for s in svc.store.usage_index("churn_model"))
