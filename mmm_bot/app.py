"""The bolt app: built without calling Slack (the bot token is handed over by `authorize`,
so no `auth.test` at construction or on the first request)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from mmm_bot.bot import Bot
from mmm_bot.config import WEB_API_TIMEOUT_S, SlackConfig
from mmm_bot.listeners import register


class _TokenFromAuthorize(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment itself and warns that it goes unused:
    by design, `authorize` hands it over instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "token` will be unused" not in record.getMessage()


def _framework_logger() -> logging.Logger:
    logger = logging.getLogger("mmm.bot.bolt")
    if not any(isinstance(f, _TokenFromAuthorize) for f in logger.filters):
        logger.addFilter(_TokenFromAuthorize())
    return logger


def create_app(bot: Bot, config: SlackConfig) -> App:
    """A bolt app whose requests must carry a valid signature made with the signing secret
    no older than five minutes (else 401, nothing done); listeners ack before they work."""

    def authorize(**_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id=None, bot_token=config.bot_token)

    app = App(
        signing_secret=config.signing_secret,
        authorize=authorize,
        # no token here: each request's client gets it from `authorize`
        client=WebClient(base_url=config.base_url, timeout=WEB_API_TIMEOUT_S),
        token_verification_enabled=False,
        # The listeners only ack and hand off, so the ack goes out as soon as they return.
        process_before_response=True,
        logger=_framework_logger(),
    )
    register(app, bot)
    return app
