"""core.policy: who may approve, deploy, abort and force, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from core.domain import Deployment
from core.policy import (
    Denied,
    approvers_for,
    can_approve,
    check_abort,
    check_approve,
    check_deploy,
    check_force,
)
from core.spec import DeploymentSpec, Policy


def deployment(model: str = "churn", by: str = "alice") -> Deployment:
    return Deployment(
        id="dep-1",
        model=model,
        version=1,
        endpoint="churn-scorer",
        regions=["local"],
        spec=DeploymentSpec(endpoint="churn-scorer"),
        requested_by=by,
        created_at="2024-01-01T00:00:00+00:00",
        updated_at="2024-01-01T00:00:00+00:00",
    )


def policy(**kw: Any) -> Policy:
    return Policy.model_validate(kw)


def test_anyone_but_the_requester_may_approve_by_default() -> None:
    d = deployment(by="alice")
    assert can_approve("bob", d, policy(), None)
    assert not can_approve("alice", d, policy(), None)
    assert can_approve("alice", d, policy(allow_self_approval=True), None)


def test_approvers_per_model_then_team_then_star_plus_admins() -> None:
    rules = {"churn": ["carol"], "team:risk": ["dave"], "*": ["erin"]}
    p = policy(approvers=rules, admins=["root"])
    d = deployment()
    assert approvers_for("churn", "risk", p) == ["carol", "root"]
    assert [who for who in ("carol", "dave", "erin", "root") if can_approve(who, d, p, "risk")] == [
        "carol",
        "root",
    ]
    other = deployment(model="fraud")
    assert [who for who in ("carol", "dave", "erin") if can_approve(who, other, p, "risk")] == [
        "dave"
    ]
    assert [who for who in ("carol", "dave", "erin") if can_approve(who, other, p, None)] == [
        "erin"
    ]
    assert approvers_for("fraud", None, policy()) is None


def test_four_eyes_holds_even_for_a_listed_approver() -> None:
    p = policy(approvers={"*": ["alice", "bob"]})
    d = deployment(by="alice")
    assert not can_approve("alice", d, p, None)
    assert can_approve("bob", d, p, None)
    with pytest.raises(Denied, match="four-eyes"):
        check_approve("alice", d, p, None)
    with pytest.raises(Denied, match=r"^carol cannot approve dep-1: approvers are alice, bob$"):
        check_approve("carol", d, p, None)
    assert not can_approve("carol", d, policy(approvers={"*": []}), None)


def test_deploy_abort_and_force() -> None:
    p = policy(deployers=["alice"], admins=["root"], approvers={"*": ["carol"]})
    check_deploy("alice", p)
    check_deploy("root", p)
    check_deploy("mallory", policy())
    with pytest.raises(Denied, match=r"^mallory may not retire \(policy.deployers\)$"):
        check_deploy("mallory", p, "retire")
    d = deployment(by="alice")
    for who in ("alice", "root", "carol"):
        check_abort(who, d, p)
    with pytest.raises(Denied, match=r"^mallory may not abort dep-1$"):
        check_abort("mallory", d, p)
    check_force("root", p)
    with pytest.raises(Denied, match="may not force"):
        check_force("alice", p)
    with pytest.raises(Denied, match="none is named"):
        check_force("alice", policy())
