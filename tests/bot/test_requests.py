"""What reaches the bot over HTTP: signatures checked before anything, answers to one user,
and a request that counts once however often Slack delivers it or a user clicks."""

from __future__ import annotations

import threading
import time

import pytest

from mmm_bot.blocks import APPROVE
from tests.bot.harness import SIGNING_SECRET, BotHarness


def test_a_bad_or_stale_signature_gets_401_and_changes_nothing(harness: BotHarness) -> None:
    bad, _ = harness.command("deploy churn 1 churn-scorer", "UALICE", secret="not-the-secret")
    stale, _ = harness.command(
        "deploy churn 1 churn-scorer", "UALICE", at=time.time() - 6 * 60, secret=SIGNING_SECRET
    )
    assert (bad.status_code, stale.status_code) == (401, 401)
    unsigned = harness.http.post(harness.events_url, content=b"command=%2Fmmm&text=help")
    assert unsigned.status_code == 401
    time.sleep(0.5)  # give a wrongly accepted request the time to do something
    assert harness.deployments() == []
    assert harness.slack.responses == [] and harness.slack.messages == []
    assert [r.action for r in harness.svc.audit_log()] == ["register"]


def test_usage_errors_answer_one_user_in_one_line_with_the_usage(harness: BotHarness) -> None:
    cases = {
        "deploy churn": "Usage: /mmm deploy MODEL VERSION",
        "frobnicate": "unknown command 'frobnicate'",
        "approve": "Usage: /mmm approve ID",
        "deploy churn 1 --colour red": "unknown option --colour",
        "deploy churn 1 churn-scorer --strategy sideways": "Usage: /mmm deploy",
        "deploy churn 7 churn-scorer": "no version 7",
    }
    names = {text: harness.command(text, "UALICE")[1] for text in cases}
    for text, expected in cases.items():
        answer = harness.answer(names[text])
        assert answer["response_type"] == "ephemeral", text
        assert expected in answer["text"], (text, answer["text"])
        assert "\n" not in answer["text"]
    assert harness.deployments() == []
    assert harness.slack.messages == []


def test_help_and_status_answer_anyone_even_unmapped(harness: BotHarness) -> None:
    _, helped = harness.command("help", "UNOBODY")
    assert "/mmm deploy MODEL VERSION" in harness.answer_text(helped)
    _, empty = harness.command("status", "UNOBODY")
    assert "no deployments" in harness.answer_text(empty)
    _, name = harness.command("deploy churn 1 churn-scorer", "UALICE")
    harness.answer(name)
    [d] = harness.deployments()
    _, listed = harness.command("status", "UNOBODY")
    assert d.id in str(harness.answer(listed)["blocks"])
    _, one = harness.command(f"status {d.id}", "UNOBODY")
    assert "churn-scorer" in str(harness.answer(one)["blocks"])


def test_an_unmapped_user_may_not_act(harness: BotHarness) -> None:
    _, name = harness.command("deploy churn 1 churn-scorer", "UNOBODY")
    text = harness.answer_text(name)
    assert "not mapped" in text and text.startswith("Refused")
    assert harness.deployments() == []

    _, name = harness.command("deploy churn 1 churn-scorer", "UALICE")
    harness.answer(name)
    [d] = harness.deployments()
    harness.wait_state(d.id, "waiting_approval")
    message = harness.wait_message(d.id, "Approve")
    _, clicked = harness.click(APPROVE, harness.buttons(d.id)[APPROVE], "UNOBODY", message.ts)
    assert "not mapped" in harness.answer_text(clicked)
    assert harness.answer(clicked)["response_type"] == "ephemeral"
    assert harness.svc.get(d.id).approvals == []
    refusals = [r for r in harness.svc.audit_log() if r.action.endswith("_refused")]
    assert {(r.action, r.detail["slack_user"]) for r in refusals} == {
        ("deploy_refused", "UNOBODY"),
        ("approve_refused", "UNOBODY"),
    }


def test_a_retried_command_starts_one_deployment(harness: BotHarness) -> None:
    first, name = harness.command("deploy churn 1 churn-scorer", "UALICE", trigger_id="t-1")
    again, other = harness.command(
        "deploy churn 1 churn-scorer", "UALICE", trigger_id="t-1", retry=1
    )
    assert (first.status_code, again.status_code) == (200, 200)
    assert "queued" in harness.one_answer(name, other)["text"]
    [d] = harness.deployments()
    harness.wait_message(d.id, "Approve")
    time.sleep(0.5)  # a second deployment or message would show by now
    assert len(harness.deployments()) == 1
    assert len(harness.slack.top_level()) == 1
    assert len([r for r in harness.svc.audit_log() if r.action == "deploy"]) == 1


def test_double_clicks_and_two_approvers_at_once_give_one_approval(harness: BotHarness) -> None:
    _, name = harness.command("deploy churn 1 churn-scorer", "UALICE")
    harness.answer(name)
    [d] = harness.deployments()
    message = harness.wait_message(d.id, "Approve")
    value = harness.buttons(d.id)[APPROVE]
    answers: list[str] = []

    def click(user: str) -> None:
        answers.append(harness.click(APPROVE, value, user, message.ts)[1])

    clicks = [threading.Thread(target=click, args=(u,)) for u in ("UBOB", "UBOB", "UCAROL")]
    for t in clicks:
        t.start()
    for t in clicks:
        t.join()
    # and one click delivered twice (a Slack retry): answered once, on either delivery
    answers.append(harness.click(APPROVE, value, "UCAROL", message.ts, trigger_id="same")[1])
    answers.append(
        harness.click(APPROVE, value, "UCAROL", message.ts, trigger_id="same", retry=1)[1]
    )

    def every_answer() -> list[str]:
        found = [str(a["text"]) for n in answers for a in harness.slack.answers(n)]
        return found if len(found) >= len(answers) - 1 else []

    texts = harness.slack.wait_for(every_answer, what="an answer to each click")
    assert len(texts) == len(answers) - 1, texts
    done = harness.wait_state(d.id, "succeeded")
    assert len(done.approvals) == 1
    assert sum("you approved it" in t for t in texts) == 1, texts
    assert all("you approved it" in t or "no longer waits" in t for t in texts), texts
    assert [r.action for r in harness.svc.audit_log(d.id)].count("approve") == 1
    assert len(harness.slack.top_level()) == 1


@pytest.mark.parametrize("text", ["abort", "retire"])
def test_acting_commands_need_their_arguments(harness: BotHarness, text: str) -> None:
    _, name = harness.command(text, "UALICE")
    assert "Usage: /mmm " + text in harness.answer_text(name)
