"""Abort (the message's button, and `/mmm abort` with its confirmation), retire with its
confirmation, and where messages go for deployments not started from Slack."""

from __future__ import annotations

import json
import time
from pathlib import Path

from mmm_bot.blocks import ABORT, ABORT_CONFIRMED, RETIRE_CONFIRMED
from tests.bot.harness import CHANNEL, BotHarness, copy_workspace
from tests.support.fake_slack import FakeSlack


def _gated(harness: BotHarness) -> str:
    _, name = harness.command("deploy churn 1 churn-scorer", "UALICE")
    harness.answer(name)
    [d] = harness.deployments()
    harness.wait_message(d.id, "Approve")
    return d.id


def _button(answer: dict[str, object], action_id: str) -> dict[str, object]:
    for block in answer["blocks"]:  # type: ignore[attr-defined]
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return dict(element)
    raise AssertionError(f"no {action_id} button in {answer}")


def test_the_abort_button_asks_first_then_undoes_and_says_who(harness: BotHarness) -> None:
    dep = _gated(harness)
    message = harness.slack.message_of(dep)
    assert message is not None
    abort = next(
        e for b in message.blocks for e in b.get("elements", []) if e.get("action_id") == ABORT
    )
    assert abort["confirm"]["confirm"]["text"] == "Abort"  # Slack asks before it sends the click
    _, name = harness.click(ABORT, abort["value"], "UBOB", message.ts)
    assert "aborted by bob" in harness.answer_text(name)
    harness.wait_state(dep, "aborted")
    final = harness.wait_message(dep, "Aborted")
    assert "Abort requested by bob" in final.rendered()
    assert "mmm_approve" not in final.rendered()
    _, again = harness.click(ABORT, abort["value"], "UBOB", message.ts)
    assert "already aborted" in harness.answer_text(again)
    assert [r.action for r in harness.svc.audit_log(dep)].count("abort") == 1


def test_abort_command_shows_what_it_undoes_and_a_confirmation(harness: BotHarness) -> None:
    dep = _gated(harness)
    _, name = harness.command(f"abort {dep} wrong model", "UBOB")
    prompt = harness.answer(name)
    assert prompt["response_type"] == "ephemeral"
    assert harness.svc.get(dep).state.value == "waiting_approval"  # nothing yet
    button = _button(prompt, ABORT_CONFIRMED)
    assert "confirm" in button
    _, first = harness.click(ABORT_CONFIRMED, str(button["value"]), "UBOB")
    _, second = harness.click(ABORT_CONFIRMED, str(button["value"]), "UBOB")  # a double click
    done = harness.wait_state(dep, "aborted")
    assert harness.one_answer(first, second)["replace_original"] is True
    assert "wrong model" in str([e.model_dump() for e in done.events])
    assert [r.action for r in harness.svc.audit_log(dep)].count("abort") == 1


def test_retire_asks_first_then_gets_its_own_message(harness: BotHarness) -> None:
    _, name = harness.command("retire churn 1", "UALICE")
    prompt = harness.answer(name)
    button = _button(prompt, RETIRE_CONFIRMED)
    assert button["confirm"]
    assert harness.deployments() == []
    _, first = harness.click(RETIRE_CONFIRMED, str(button["value"]), "UALICE")
    _, second = harness.click(RETIRE_CONFIRMED, str(button["value"]), "UALICE")  # double click
    assert "queued: retire churn v1" in harness.one_answer(first, second)["text"]
    [ret] = harness.deployments()
    assert ret.id.startswith("ret-")
    harness.wait_state(ret.id, "succeeded")
    message = harness.wait_message(ret.id, "Succeeded")
    assert message.channel == CHANNEL and "retire *churn* v1" in message.rendered()
    assert len(harness.deployments()) == 1
    record = next(r for r in harness.svc.audit_log(ret.id) if r.action == "retire")
    assert (record.actor, record.detail["slack_user"]) == ("alice", "UALICE")


def test_a_deployment_from_the_cli_goes_to_the_configured_channel(
    template: Path, tmp_path: Path, slack: FakeSlack
) -> None:
    home = copy_workspace(template, tmp_path / "ws", slack={"channel": "CANNOUNCE"})
    harness = BotHarness(home, slack)
    try:
        d = harness.svc.deploy("churn", "1", endpoint="churn-scorer")
        harness.wait_state(d.id, "waiting_approval")
        message = harness.wait_message(d.id, "Approve")
        assert message.channel == "CANNOUNCE"
        # ... and the Slack button works on it like on any other
        value = json.loads(harness.buttons(d.id)["mmm_approve"])
        assert value["id"] == d.id
    finally:
        harness.close()


def test_without_a_channel_a_cli_deployment_posts_nothing(harness: BotHarness) -> None:
    d = harness.svc.deploy("churn", "1", endpoint="churn-scorer")
    harness.wait_state(d.id, "waiting_approval")
    time.sleep(0.5)  # the notifier has seen it by now
    assert harness.slack.messages == []
