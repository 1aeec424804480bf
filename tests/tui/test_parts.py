"""The dashboard's pure parts: fitting columns to a width, reading a filter, ages, bars."""

from __future__ import annotations

from datetime import UTC, datetime

from core.domain import DeploymentState, Kind
from core.store import DeploymentQuery
from mmm_tui.data import DEPLOYMENT_COLUMNS, deployment_query
from mmm_tui.formatting import age, step_bar, version_text
from mmm_tui.widgets.paged_table import GAP, Column, fit_columns


def test_columns_fill_the_width_and_drop_the_least_wanted_first() -> None:
    for width in (60, 80, 118, 199):
        fitted = fit_columns(DEPLOYMENT_COLUMNS, width)
        used = sum(w for _, w in fitted) + GAP * (len(fitted) - 1)
        assert used <= width
        keys = [c.key for c, _ in fitted]
        assert {"id", "state", "model", "version"} <= set(keys)  # what matters stays
    assert len(fit_columns(DEPLOYMENT_COLUMNS, 199)) == len(DEPLOYMENT_COLUMNS)
    narrow = [c.key for c, _ in fit_columns(DEPLOYMENT_COLUMNS, 80)]
    assert "approvals" not in narrow and "age" in narrow
    wide = dict((c.key, w) for c, w in fit_columns(DEPLOYMENT_COLUMNS, 199))
    assert wide["model"] > 10 and wide["endpoint"] > 14  # the growing columns take the room


def test_one_column_always_shows() -> None:
    assert fit_columns([Column("a", "a", 30), Column("b", "b", 30, priority=0)], 10) == [
        (Column("a", "a", 30), 10)
    ]


def test_filter_words_pick_fields_and_the_rest_is_text() -> None:
    q = deployment_query("state:failed state:waiting model:churn ep-1", DeploymentQuery())
    assert q.states == frozenset({DeploymentState.FAILED, DeploymentState.WAITING_APPROVAL})
    assert q.model == "churn" and q.text == "ep-1"
    q = deployment_query("active kind:retire", DeploymentQuery(endpoint="x"))
    assert q.active_only and q.kind is Kind.RETIRE and q.endpoint == "x" and q.text == ""
    assert deployment_query("state:bogus", DeploymentQuery()).text == "state:bogus"


def test_ages_bars_and_versions() -> None:
    now = datetime(2025, 1, 2, 0, 0, tzinfo=UTC)
    assert age("2025-01-01T23:59:30.000Z", now) == "30s"
    assert age("2025-01-01T23:00:00.000Z", now) == "1h"
    assert age("2024-12-30T00:00:00.000Z", now) == "3d"
    assert step_bar(3, 12, DeploymentState.RUNNING, width=4).plain == "█░░░ 3/12"
    assert version_text("1.1.0") == "v1.1.0" and version_text("0", Kind.RETIRE) == "all"
