"""`/mmm deploy` with a gate, over real HTTP: one deployment, one message updated in place,
four-eyes at the Approve button, the end shown on the message."""

from __future__ import annotations

import json

from mmm_bot.blocks import APPROVE
from tests.bot.harness import CHANNEL, BotHarness


def test_deploy_approve_and_finish_in_one_message(harness: BotHarness) -> None:
    slack = harness.slack
    response, name = harness.command("deploy churn 1 churn-scorer", "UALICE")
    assert response.status_code == 200
    answer = harness.answer(name)
    assert answer["response_type"] == "ephemeral"
    assert "queued" in answer["text"]

    [d] = harness.deployments()
    assert d.requested_by == "alice"
    d = harness.wait_state(d.id, "waiting_approval")
    message = harness.wait_message(d.id, "Approve")
    assert message.channel == CHANNEL
    buttons = harness.buttons(d.id)
    assert set(buttons) == {"mmm_approve", "mmm_abort"}

    # the requester's own Approve: refused to her alone, nothing passes
    _, refused = harness.click(APPROVE, buttons[APPROVE], "UALICE", message.ts)
    text = harness.answer_text(refused)
    assert "alice cannot approve" in text and "four-eyes" in text
    assert harness.answer(refused)["response_type"] == "ephemeral"
    assert harness.svc.get(d.id).state.value == "waiting_approval"

    # another mapped user passes the gate; the message names them, then says how it ended
    _, passed = harness.click(APPROVE, buttons[APPROVE], "UBOB", message.ts)
    assert "approved" in harness.answer_text(passed)
    harness.wait_state(d.id, "succeeded")
    final = harness.wait_message(d.id, "Succeeded")
    assert "Approved by bob" in final.rendered()
    assert "mmm_approve" not in final.rendered()  # the buttons gave way
    assert len(slack.top_level(CHANNEL)) == 1
    assert slack.replies(final.ts)  # details in its thread
    assert not slack.calls_of("chat.postMessage")[0].args.get("thread_ts")

    audit = harness.svc.audit_log(d.id)
    by_action = {r.action: r for r in audit}
    assert by_action["deploy"].actor == "alice"
    assert by_action["deploy"].detail["slack_user"] == "UALICE"
    assert by_action["approve_refused"].detail["slack_user"] == "UALICE"
    assert by_action["approve"].actor == "bob"
    assert by_action["approve"].detail["slack_user"] == "UBOB"
    assert json.dumps([r.model_dump() for r in audit]).count("xoxb") == 0
