"""Tokens stay out of logs, state and messages; the ack never waits for the work."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from mmm_bot.blocks import APPROVE
from tests.bot.harness import BOT_TOKEN, CHANNEL, SIGNING_SECRET, BotHarness, copy_workspace
from tests.support.fake_slack import FakeSlack


def test_tokens_never_reach_logs_state_or_messages(
    harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, name = harness.command("deploy churn 1 churn-scorer", "UALICE")
    harness.answer(name)
    [d] = harness.deployments()
    message = harness.wait_message(d.id, "Approve")
    _, approved = harness.click(APPROVE, harness.buttons(d.id)[APPROVE], "UBOB", message.ts)
    harness.answer(approved)
    harness.wait_message(d.id, "Succeeded")
    harness.slack.fail("chat.update", "invalid_auth")  # an error path logs too
    harness.svc.deploy("churn", "1", endpoint="other-endpoint")
    harness.slack.wait_for(lambda: len(harness.deployments()) == 2)

    secrets = (BOT_TOKEN, SIGNING_SECRET)
    assert "xoxb" not in repr(harness.config)
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "Sending a request" in logged  # the Web API client did log at debug
    seen_by_slack = json.dumps(
        [c.args for c in harness.slack.calls]
        + [body for _, body in harness.slack.responses]
        + [m.rendered() for m in harness.slack.messages]
    )
    state = b"".join(p.read_bytes() for p in harness.home.glob("state.db*"))
    audit = json.dumps([r.model_dump() for r in harness.svc.audit_log()])
    for secret in secrets:
        assert secret not in logged
        assert secret not in seen_by_slack
        assert secret.encode() not in state
        assert secret not in audit
    # the token went where it belongs: the Authorization header of Web API calls
    assert {c.authorization for c in harness.slack.calls} == {f"Bearer {BOT_TOKEN}"}


def test_the_ack_goes_out_before_the_work_and_the_message_waits_for_its_channel(
    harness: BotHarness,
) -> None:
    store = harness.svc.store
    # Hold the notifier's cursor, as a slow notifier would: the deploy's work waits for it.
    harness.slack.wait_for(
        lambda: store.acquire_lease("feed:notifier", "a-slow-notifier", 60, time.time()),
        what="the notifier's cursor",
    )
    response, name = harness.command("deploy churn 1 churn-scorer", "UALICE")
    assert response.status_code == 200 and response.content == b""  # acked, nothing done yet
    assert harness.deployments() == [] and harness.slack.answers(name) == []
    store.release_lease("feed:notifier", "a-slow-notifier")
    assert "queued" in harness.answer_text(name)
    [d] = harness.deployments()
    assert harness.wait_message(d.id, "Approve").channel == CHANNEL
    assert len(harness.slack.top_level()) == 1


def test_a_request_from_another_slack_workspace_is_refused_and_audited(
    template: Path, slack: FakeSlack, tmp_path: Path
) -> None:
    """With `slack.team_id`, a request signed for the app but made from another workspace
    (the fake sends T0FAKE) reads nothing and does nothing; it is told why."""
    home = copy_workspace(template, tmp_path / "ws", slack={"team_id": "T0OURS"})
    harness = BotHarness(home, slack)
    try:
        refusal = "Refused: this mmm answers Slack workspace T0OURS only, not T0FAKE"
        for text in ("status", "deploy churn 1 --endpoint churn-scorer"):
            response, name = harness.command(text, user="UALICE")
            assert response.status_code == 200
            assert harness.answer_text(name) == refusal
        response, name = harness.click(APPROVE, json.dumps({"d": "dep-1"}), user="UBOB")
        assert response.status_code == 200
        assert harness.answer_text(name) == refusal
        assert harness.deployments() == []
        refused = [r for r in harness.svc.audit_log(None) if r.action == "request_refused"]
        assert [(r.actor, r.target) for r in reversed(refused)] == [
            ("alice", "status"),
            ("alice", "deploy churn 1 --endpoint churn-scorer"),
            ("bob", APPROVE),
        ]
        assert all(r.detail["reason"] == refusal.removeprefix("Refused: ") for r in refused)
    finally:
        harness.close()
