"""Configuration from the environment, and the two ways of serving the bot."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from slack_sdk.errors import SlackApiError

from core.bootstrap import load_workspace
from core.service import Service
from core.store.sqlite import SqliteStore
from mmm_bot import SlackConfig, start_bot
from tests.bot.harness import BOT_TOKEN, SIGNING_SECRET
from tests.support.fake_slack import FakeSlack
from tests.support.worker_process import fake_ports


def test_slack_is_configured_by_two_variables() -> None:
    assert SlackConfig.from_env({}) is None
    assert SlackConfig.from_env({"SLACK_BOT_TOKEN": "xoxb-1"}) is None
    config = SlackConfig.from_env(
        {"SLACK_BOT_TOKEN": " xoxb-1 ", "SLACK_SIGNING_SECRET": "s3cret", "SLACK_APP_TOKEN": ""}
    )
    assert config is not None
    assert (config.bot_token, config.socket_mode, config.base_url) == (
        "xoxb-1",
        False,
        "https://slack.com/api/",
    )
    other = SlackConfig.from_env(
        {
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "s3cret",
            "SLACK_APP_TOKEN": "xapp-1",
            "SLACK_API_URL": "http://127.0.0.1:9/api",
        }
    )
    assert other is not None and other.socket_mode and other.base_url == "http://127.0.0.1:9/api/"
    assert "xoxb" not in repr(other) and "s3cret" not in repr(other) and "xapp" not in repr(other)


def test_http_serves_the_events_route_on_its_own_port(home: Path, slack: FakeSlack) -> None:
    svc = Service(load_workspace(home), SqliteStore(home / "state.db"), fake_ports(home), "up")
    config = SlackConfig(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=slack.api_url)
    bot = start_bot(svc, config, port=0)
    try:
        assert httpx.get(bot.url + "/healthz").status_code == 200
        assert httpx.post(bot.url + "/slack/events", content=b"{}").status_code == 401
        assert httpx.get(bot.url + "/slack/events").status_code == 405
    finally:
        bot.stop()
    assert slack.calls == []  # building and serving the app called nothing


def test_socket_mode_opens_its_connection_through_the_configured_api(
    home: Path, slack: FakeSlack
) -> None:
    svc = Service(load_workspace(home), SqliteStore(home / "state.db"), fake_ports(home), "up")
    config = SlackConfig(
        bot_token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        app_token="xapp-test-app-token",
        api_url=slack.api_url,
    )
    with pytest.raises(SlackApiError):  # the fake has no WebSocket to offer
        start_bot(svc, config)
    [call] = slack.calls
    assert (call.method, call.authorization) == (
        "apps.connections.open",
        "Bearer xapp-test-app-token",
    )
