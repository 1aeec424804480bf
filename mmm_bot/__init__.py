"""The Slack bot of mmm: `/mmm` commands, a message per deployment updated in place from the
change feed, Approve and Abort buttons while it waits at a gate.

Entry points for the command line:

- `SlackConfig.from_env()`: the configuration, or None when Slack is not configured;
- `start_bot(svc, config, port)`: serve it in the background (`mmm up --bot-port`), returns
  a handle with `url` and `stop()`;
- `serve(svc, config, port)`: serve it in the foreground (`mmm bot --port`);
- `SlackNotifier.for_service(svc, config)`: the notifier that posts and updates the
  messages, for whichever process follows the change feed (the worker's).
"""

from __future__ import annotations

from mmm_bot.app import create_app
from mmm_bot.bot import Bot
from mmm_bot.config import SlackConfig
from mmm_bot.notifier import SlackNotifier
from mmm_bot.server import RunningBot, asgi_app, serve, start_bot

__all__ = [
    "Bot",
    "RunningBot",
    "SlackConfig",
    "SlackNotifier",
    "asgi_app",
    "create_app",
    "serve",
    "start_bot",
]
