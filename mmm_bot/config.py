"""How the bot reaches Slack: tokens and the Web API's address, read from the environment.

The tokens live here and in the Web API client only: this object never prints them
(its repr leaves them out), and nothing else keeps them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from slack_sdk import WebClient

SLACK_API_DEFAULT = "https://slack.com/api/"
WEB_API_TIMEOUT_S = 10


@dataclass(frozen=True)
class SlackConfig:
    """`SLACK_BOT_TOKEN` and `SLACK_SIGNING_SECRET` (both needed), `SLACK_APP_TOKEN` (Socket
    Mode instead of HTTP when set) and `SLACK_API_URL` (another Web API base, e.g. a test's
    fake)."""

    bot_token: str = field(repr=False)
    signing_secret: str = field(repr=False)
    app_token: str | None = field(default=None, repr=False)
    api_url: str = SLACK_API_DEFAULT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SlackConfig | None:
        """The configuration in `env` (default: this process's environment); None when Slack
        is not configured (a token or the signing secret is missing)."""
        env = os.environ if env is None else env
        token = env.get("SLACK_BOT_TOKEN", "").strip()
        secret = env.get("SLACK_SIGNING_SECRET", "").strip()
        if not token or not secret:
            return None
        return cls(
            bot_token=token,
            signing_secret=secret,
            app_token=env.get("SLACK_APP_TOKEN", "").strip() or None,
            api_url=env.get("SLACK_API_URL", "").strip() or SLACK_API_DEFAULT,
        )

    @property
    def socket_mode(self) -> bool:
        """Slack sends requests over a WebSocket the bot opens (no public URL needed)."""
        return self.app_token is not None

    @property
    def base_url(self) -> str:
        # slack_sdk joins method names onto the base: it must end with a slash.
        return self.api_url if self.api_url.endswith("/") else self.api_url + "/"

    def web_client(self) -> WebClient:
        """A Web API client with the bot token, on `base_url`."""
        return WebClient(token=self.bot_token, base_url=self.base_url, timeout=WEB_API_TIMEOUT_S)
