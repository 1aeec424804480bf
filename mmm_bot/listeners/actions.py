"""Buttons: Approve and Abort on a deployment's message, and the confirmation buttons under
`/mmm abort` and `/mmm retire` previews."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App

from mmm_bot import blocks, tasks
from mmm_bot.bot import Bot, Origin
from mmm_bot.listeners.origin import origin_of

log = logging.getLogger("mmm.bot")

Click = Callable[[Bot, Origin, dict[str, Any]], None]

CLICKS: dict[str, Click] = {
    blocks.APPROVE: tasks.click_approve,
    blocks.ABORT: tasks.click_abort,
    blocks.ABORT_CONFIRMED: tasks.confirm_abort,
    blocks.RETIRE_CONFIRMED: tasks.confirm_retire,
}


def register(app: App, bot: Bot) -> None:
    for action_id, click in CLICKS.items():
        app.action(action_id)(_listener(bot, click))


def _listener(bot: Bot, click: Click) -> Callable[[Ack, dict[str, Any]], None]:
    def on_click(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        origin = origin_of(bot, body)
        actions = body.get("actions") or [{}]
        if bot.foreign(origin):
            target = str(actions[0].get("action_id", ""))
            bot.later(lambda: tasks.refuse_foreign(bot, origin, target))
            return
        try:
            value = blocks.button_value(str(actions[0].get("value", "")))
        except (ValueError, RecursionError):  # not JSON (or nested past what json reads)
            log.warning("a click with a value that is not ours; ignored")
            return
        bot.later(lambda: click(bot, origin, value))

    return on_click
