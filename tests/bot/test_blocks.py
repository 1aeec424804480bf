"""Block Kit rendering from the typed read model: no Slack, no store."""

from __future__ import annotations

import json
from typing import Any

from core.domain import Approval, Deployment, DeploymentState, Kind, Phase, Stage, StepProgress
from core.events import (
    AbortRequested,
    Created,
    DeploymentEvent,
    Finished,
    StepFailed,
    StepSucceeded,
)
from core.spec import Gate, SlackSettings, parse_deployment
from mmm_bot import blocks

AT = "2026-12-03T10:11:12.345Z"
SETTINGS = SlackSettings(users={"UBOB": "bob"})


def deployment(**update: Any) -> Deployment:
    spec = parse_deployment(
        {"endpoint": "churn-scorer", "gates": ["before_rollout"], "strategy": {"kind": "shadow"}}
    )
    d = Deployment(
        id="dep-261203-abcdef",
        model="churn",
        version="1.1.0",
        endpoint="churn-scorer",
        regions=["local"],
        spec=spec,
        requested_by="alice",
        created_at=AT,
        updated_at=AT,
        events=[Created(at=AT, by="alice")],
    )
    return d.model_copy(update=update)


def text_of(message: blocks.Message) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


def test_a_version_is_shown_as_the_registry_names_it() -> None:
    shown = text_of(blocks.deployment_message(deployment(), SETTINGS))
    assert "*churn* v1.1.0" in shown and "churn-scorer" in shown and "shadow" in shown


def test_a_deployment_to_several_regions_names_them_in_wave_order() -> None:
    d = deployment(regions=["eu-west-1", "us-east-1"])
    shown = text_of(blocks.deployment_message(d, SETTINGS))
    assert "· eu-west-1 → us-east-1" in shown
    assert "(shadow, eu-west-1 -> us-east-1)" in blocks.summary_text(d)
    assert "→ us" not in text_of(blocks.deployment_message(deployment(), SETTINGS))


def test_the_status_list_counts_only_what_the_store_counted() -> None:
    three = [deployment(id=f"dep-261203-00000{i}") for i in range(3)]
    assert blocks.status_list(three, 40, limit=3).text == "40 deployment(s) (the newest 3 of 40)"
    # a store that does not count (DynamoDB): a full list may have more behind it
    assert blocks.status_list(three, None, limit=3).text == "3 deployment(s) (the newest 3)"
    assert blocks.status_list(three[:2], None, limit=3).text == "2 deployment(s)"


def test_waiting_at_a_gate_carries_approve_and_abort_with_a_confirmation() -> None:
    d = deployment(state=DeploymentState.WAITING_APPROVAL, stage=Stage.ROLLOUT, step=8)
    d.context.gate = Gate.BEFORE_PROMOTE
    message = blocks.deployment_message(d, SETTINGS, approvers=["carol"])
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    approve, abort = actions["elements"]
    assert (approve["text"]["text"], abort["text"]["text"]) == ("Approve", "Abort")
    assert json.loads(approve["value"]) == {"id": d.id, "gate": "before_promote", "approvals": 0}
    assert "confirm" in abort and "confirm" not in approve
    assert "approvers: carol" in text_of(message)
    assert "actions" not in text_of(blocks.deployment_message(d, SETTINGS, interactive=False))


def test_progress_bar_and_current_step() -> None:
    d = deployment(state=DeploymentState.RUNNING, stage=Stage.ROLLOUT, step=10)
    d.context.progress["collect"] = StepProgress(samples=120, target=500)
    shown = text_of(blocks.deployment_message(d, SETTINGS))
    assert "now: `collect` (rollout)" in shown and "120/500 samples" in shown
    assert blocks.progress_bar(0, 10, 10) == "▱" * 10
    assert blocks.progress_bar(5, 10, 10) == "▰" * 5 + "▱" * 5
    assert blocks.progress_bar(10, 10, 10) == "▰" * 10


def test_the_analysis_with_its_chart_and_links_to_charts_reachable_over_http() -> None:
    analysis = {
        "verdict": "pass",
        "samples": 600,
        "summary": "pass on 600 pairs",
        "text": "production ▁▂▃█▃▂▁\nshadow     ▁▂▃█▃▂▁",
        "report": ["local://reports/dep/qq.png", "https://charts.example/dep/qq.png"],
    }
    shown = text_of(blocks.deployment_message(deployment(analysis=analysis), SETTINGS))
    assert "Analysis: pass" in shown and "pass on 600 pairs" in shown
    assert "```production ▁▂▃█▃▂▁" in shown
    assert "<https://charts.example/dep/qq.png|qq.png>" in shown
    assert "local://" not in shown


def test_who_approved_and_how_it_ended() -> None:
    d = deployment(
        state=DeploymentState.SUCCEEDED,
        stage=Stage.DONE,
        approvals=[Approval(by="bob", at=AT, gate="before_rollout")],
        events=[Created(at=AT, by="alice"), Finished(at=AT, state="succeeded")],
    )
    shown = text_of(blocks.deployment_message(d, SETTINGS))
    assert "Approved by bob (<@UBOB>)" in shown and "*Succeeded*" in shown
    assert "12/12" not in shown or "steps" in shown
    assert "mmm_approve" not in shown


def test_text_from_outside_cannot_ping_or_link() -> None:
    d = deployment(
        state=DeploymentState.ABORTED,
        phase=Phase.COMPENSATING,
        error="aborted by eve: <!channel> see <https://evil.example|here> & more",
        events=[AbortRequested(at=AT, by="eve", reason="<!here>")],
    )
    shown = text_of(blocks.deployment_message(d, SETTINGS))
    assert "<!channel>" not in shown and "<!here>" not in shown
    assert "<https://evil" not in shown
    assert "&lt;!channel&gt;" in shown


def test_thread_lines_leave_quiet_events_out() -> None:
    events: list[DeploymentEvent] = [
        Created(at=AT, by="alice"),
        StepSucceeded(at=AT, step="validate", summary="ok"),
        StepFailed(at=AT, step="run_checks", error="1 failed"),
    ]
    reply = blocks.thread_lines(events)
    assert reply is not None
    assert "10:11:12 ok    validate" in reply and "FAIL  run_checks" in reply
    assert "requested by" not in reply
    assert blocks.thread_lines([Created(at=AT, by="alice")]) is None


def test_a_retirement_names_its_versions() -> None:
    d = deployment(kind=Kind.RETIRE, endpoint="-")
    d.context.versions = ["1", "2"]
    assert "retire *churn* v1, v2" in text_of(blocks.deployment_message(d, SETTINGS))
