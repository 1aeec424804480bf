"""Fixtures of the bot's tests: a fake Slack, a template workspace copied per test, and the
bot running over it (tests/bot/harness.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot.harness import BOT_TOKEN, BotHarness, copy_workspace, make_template
from tests.support.fake_slack import FakeSlack

os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("bot-template"))


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN) as fake:
        yield fake


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    return copy_workspace(template, tmp_path / "ws")


@pytest.fixture
def harness(home: Path, slack: FakeSlack) -> Iterator[BotHarness]:
    h = BotHarness(home, slack)
    try:
        yield h
    finally:
        h.close()
