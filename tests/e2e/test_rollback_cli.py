"""`mmm rollback ENDPOINT` through the real command: back to the version that served before."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Workspace

pytestmark = pytest.mark.slow  # three rollouts through `mmm`: `make test-slow`


def test_rollback_puts_the_previous_version_back_then_refuses_a_retired_one(
    ws: Workspace,
) -> None:
    assert ws.register(seed=0) == 1
    assert ws.register(seed=1) == 2
    res = ws.run("rollback", "churn-scorer")
    assert res.code == 2 and res.out == ""
    assert res.err.strip() == (
        "mmm: error: nothing to roll back: no successful deployment on churn-scorer"
    )
    ws.ok("deploy", "churn", "1", "--endpoint", "churn-scorer")
    v2 = ws.ok("deploy", "churn", "2", "--endpoint", "churn-scorer").out.strip()
    assert ws.weights() == {"churn-v2": 100.0}

    d = ws.ok("rollback", "churn-scorer", "--json").json()
    assert (d["model"], d["version"], d["endpoint"]) == ("churn", 1, "churn-scorer")
    assert (d["strategy"], d["state"], d["requested_by"]) == ("all-at-once", "succeeded", "alice")
    assert ws.weights() == {"churn-v1": 100.0}
    [record] = ws.ok("audit", d["id"], "--json").json()
    assert (record["action"], record["detail"]["undoes"]) == ("rollback", v2)

    # what served before the rollback (v2) is retired: nothing to go back to
    ws.ok("retire", "churn", "2")
    before = ws.ok("status", "--json").json()
    res = ws.run("rollback", "churn-scorer")
    assert res.code == 2 and res.out == ""
    assert res.err.strip() == (
        "mmm: error: cannot roll back churn-scorer to churn v2: it has been retired"
    )
    assert ws.ok("status", "--json").json() == before  # nothing recorded
    assert ws.weights() == {"churn-v1": 100.0}
