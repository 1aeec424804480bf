"""The `/mmm` slash command."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from mmm_bot import tasks
from mmm_bot.bot import Bot
from mmm_bot.grammar import COMMAND
from mmm_bot.listeners.origin import origin_of


def register(app: App, bot: Bot) -> None:
    @app.command(COMMAND)
    def on_mmm(ack: Ack, body: dict[str, Any]) -> None:
        ack()  # an empty 200: the answer follows through the response_url
        origin = origin_of(bot, body)
        text = str(body.get("text") or "")
        if bot.foreign(origin):
            bot.later(lambda: tasks.refuse_foreign(bot, origin, text.strip()))
            return
        bot.later(lambda: tasks.run_command(bot, origin, text))
