"""The service's queries for the front ends: pages, previews, endpoints and their figures."""

from __future__ import annotations

from typing import Any

import pytest

from core.domain import DeploymentState
from core.service import BadRequest
from core.store import DeploymentQuery
from tests.integration.conftest import Files, MakeService, register_two
from tests.support.fakes import RecordingMonitor


def test_queries_of_a_workspace_with_two_versions_serving(
    make_service: MakeService, model_files: Files
) -> None:
    svc = make_service()
    register_two(svc, model_files)
    first = svc.run(svc.deploy("churn", "1", "churn-scorer"))
    second = svc.run(svc.deploy("churn", "2", "fraud-scorer"))
    assert {first.state, second.state} == {DeploymentState.SUCCEEDED}

    page, total = svc.page(DeploymentQuery(limit=1))
    assert total == 2 and [d.id for d in page] == [second.id]  # newest first
    page, total = svc.page(DeploymentQuery(endpoint="churn-scorer"))
    assert total == 1 and page[0].id == first.id

    # a store whose count reads every match (DynamoDB) is not asked: the page says nothing
    # of the rest, and a full page means more may follow
    def no_count(query: DeploymentQuery) -> int:
        raise AssertionError("counted")

    store: Any = svc.store
    store.counts_cheaply, store.count = False, no_count
    page, total = svc.page(DeploymentQuery(limit=1))
    assert total is None and [d.id for d in page] == [second.id]
    audit = svc.audit_log(limit=2) + svc.audit_log(limit=10, offset=2)
    assert audit == svc.audit_log() and len(audit) >= 4

    assert [(c.name, c.region) for c in svc.endpoints()] == [
        ("churn-scorer", "local"),
        ("fraud-scorer", "local"),
    ]
    monitor = svc.ports.monitor
    assert isinstance(monitor, RecordingMonitor)
    monitor.traffic[("churn-scorer", "churn-v1", "production")] = (120, 6, 4.5)
    (figures,) = svc.figures("churn-scorer", "local", window_s=60)
    assert (figures.variant, figures.request_rate, figures.error_rate, figures.p99_ms) == (
        "churn-v1",
        2.0,
        0.05,
        4.5,
    )
    with pytest.raises(BadRequest, match="no endpoint nope in local"):
        svc.figures("nope", "local")

    retire = svc.preview_retire("churn", "1")
    assert {s.kind.value for s in retire.sites} >= {"endpoint", "artifact", "monitor", "code"}
    assert retire.refused is not None and "churn-scorer (local) at 100%" in retire.refused
    with pytest.raises(BadRequest) as refused:
        svc.retire("churn", "1")
    assert str(refused.value) == retire.refused  # the preview says what retire then says

    ended = svc.preview_abort(first.id)
    assert not ended.possible
