"""The Slack notifier on its own, against the fake Slack: the message found again after a
crash, Slack's failures sorted into try-again and give-up, entries delivered twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk import WebClient

from core.bootstrap import load_workspace
from core.ports import TransientError
from core.service import Service
from core.store.sqlite import SqliteStore
from mmm_bot.notifier import METADATA_TYPE, SlackNotifier
from tests.bot.harness import BOT_TOKEN
from tests.support.fake_slack import FakeSlack
from tests.support.worker_process import fake_ports


@pytest.fixture
def svc(home: Path) -> Iterator[Service]:
    service = Service(load_workspace(home), SqliteStore(home / "state.db"), fake_ports(home), "al")
    yield service
    service.close()


def notifier(slack: FakeSlack, svc: Service) -> SlackNotifier:
    client = WebClient(token=BOT_TOKEN, base_url=slack.api_url)
    return SlackNotifier(client, svc.ws.settings.slack, progress_every_s=3600)


def test_after_a_crash_before_its_ts_was_kept_the_message_is_found_not_posted_again(
    slack: FakeSlack, svc: Service
) -> None:
    d = svc.deploy("churn", "1", endpoint="churn-scorer")
    [created] = svc.changes(0)
    n = notifier(slack, svc)
    kept = n.deliver(created, d, {"channel": "C1"})
    assert kept is not None and kept["ts"] and kept["channel"] == "C1"
    [posted] = slack.top_level("C1")
    assert posted.metadata == {
        "event_type": METADATA_TYPE,
        "event_payload": {"deployment_id": d.id},
    }
    # the process died before `kept` was saved: the next one starts from the channel alone
    again = notifier(slack, svc).deliver(created, d, {"channel": "C1"})
    assert again is not None and again["ts"] == kept["ts"]
    assert len(slack.top_level("C1")) == 1
    assert slack.calls_of("conversations.history")[-1].args["include_all_metadata"] in ("1", 1)
    assert slack.calls_of("chat.update")  # brought up to date instead


def test_an_entry_delivered_twice_is_shown_once(slack: FakeSlack, svc: Service) -> None:
    d = svc.deploy("churn", "1", endpoint="churn-scorer")
    d = svc.run(d)  # to the gate, with the silent notifier
    n = notifier(slack, svc)
    kept = None
    for entry in svc.changes(0):
        kept = n.deliver(entry, d, kept or {"channel": "C1"})
    replies = len(slack.messages)
    for entry in svc.changes(0):
        assert n.deliver(entry, d, kept) == kept
    assert len(slack.messages) == replies


def test_rate_limits_and_outages_are_tried_again_refusals_are_not(
    slack: FakeSlack, svc: Service
) -> None:
    d = svc.deploy("churn", "1", endpoint="churn-scorer")
    [created] = svc.changes(0)
    n = notifier(slack, svc)
    slack.fail("chat.postMessage", "ratelimited", status=429)
    with pytest.raises(TransientError):
        n.deliver(created, d, {"channel": "C1"})
    slack.fail("chat.postMessage", "service_unavailable", status=503)
    with pytest.raises(TransientError):
        n.deliver(created, d, {"channel": "C1"})
    slack.fail("chat.postMessage", "not_in_channel")
    kept = n.deliver(created, d, {"channel": "C1"})  # given up: the rollout goes on
    assert kept is not None and "ts" not in kept and kept["seq"] == created.seq
    assert slack.top_level() == []


def test_unreachable_slack_is_tried_again(svc: Service) -> None:
    client = WebClient(token=BOT_TOKEN, base_url="http://127.0.0.1:9/api/", timeout=2)
    n = SlackNotifier(client, svc.ws.settings.slack)
    d = svc.deploy("churn", "1", endpoint="churn-scorer")
    [created] = svc.changes(0)
    with pytest.raises(TransientError):
        n.deliver(created, d, {"channel": "C1"})


def test_nothing_is_posted_without_a_channel(slack: FakeSlack, svc: Service) -> None:
    d = svc.deploy("churn", "1", endpoint="churn-scorer")
    [created] = svc.changes(0)
    assert notifier(slack, svc).deliver(created, d, None) is None
    assert slack.calls == []
