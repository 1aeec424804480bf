"""The bot's listeners, grouped by kind; each acks first and hands its work to the bot."""

from __future__ import annotations

from slack_bolt import App

from mmm_bot.bot import Bot
from mmm_bot.listeners import actions, commands


def register(app: App, bot: Bot) -> None:
    """Attach every listener to `app`."""
    commands.register(app, bot)
    actions.register(app, bot)
