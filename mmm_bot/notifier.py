"""The Slack notifier (core.ports.Notifier): one message per deployment, updated in place as
the change feed goes, with the details as replies in its thread.

What it keeps per deployment (core.notify hands it back with the next entry): the channel,
the message's ts, and the last feed entry delivered. A deployment asked for in Slack comes
with its channel already kept (the bot records it); others go to `slack.channel`, or
nowhere. Each message carries the deployment id in its metadata, so after a crash between
posting a message and keeping its ts the notifier finds it again (`conversations.history`)
rather than posting a second one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from core.domain import Deployment
from core.feed import FeedEntry
from core.ports import TransientError
from core.service import Service
from core.spec import SlackSettings
from mmm_bot.blocks import Message, deployment_message, thread_lines
from mmm_bot.config import SlackConfig

log = logging.getLogger("mmm.bot.notifier")

METADATA_TYPE = "mmm_deployment"
# A look at a long step (samples so far) updates the message at most this often.
PROGRESS_EVERY_S = 3.0
# How far before a deployment's creation its message may be (clocks differ a little).
_FIND_SLACK_S = 120.0
_FIND_PAGES = 5
_TRANSIENT = {
    "ratelimited",
    "service_unavailable",
    "internal_error",
    "fatal_error",
    "request_timeout",
}
_GONE = {"message_not_found", "cant_update_message"}

Approvers = Callable[[Deployment], list[str] | None]


class SlackNotifier:
    """Posts and updates the message of each deployment (see the module's docstring)."""

    def __init__(
        self,
        client: WebClient,
        settings: SlackSettings,
        approvers: Approvers | None = None,
        progress_every_s: float = PROGRESS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.settings = settings
        self.approvers = approvers
        self.progress_every_s = progress_every_s
        self.clock = clock
        self._updated: dict[str, float] = {}

    @classmethod
    def for_service(cls, svc: Service, config: SlackConfig) -> SlackNotifier:
        """The notifier of `svc`'s workspace (its `slack:` settings, its approvers)."""
        return cls(config.web_client(), svc.ws.settings.slack, approvers=svc.approvers_for)

    # ------------------------------------------------------------ the port

    def deliver(
        self, entry: FeedEntry, deployment: Deployment, kept: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        state = dict(kept or {})
        channel = state.get("channel") or self.settings.channel
        if not channel:
            return kept  # asked for outside Slack, and no channel to announce it in
        if entry.seq and entry.seq <= int(state.get("seq", 0)):
            return kept  # delivered before (the feed delivers at least once)
        state["channel"] = channel
        try:
            self._show(entry, deployment, state)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if exc.response.status_code in (429, 500, 502, 503, 504) or error in _TRANSIENT:
                raise TransientError(f"Slack: {error or exc.response.status_code}") from None
            # Nothing retrying would fix (a channel the bot is not in, a revoked token): the
            # rollout goes on; the log says why its message did not.
            log.warning("Slack refused the message of %s: %s", deployment.id, error or "error")
        except (SlackRequestError, OSError) as exc:
            raise TransientError(f"Slack unreachable: {type(exc).__name__}") from None
        state["seq"] = entry.seq
        return state

    # ------------------------------------------------------------ the message

    def _show(self, entry: FeedEntry, d: Deployment, state: dict[str, Any]) -> None:
        channel = str(state["channel"])
        message = self._message(d)
        ts = state.get("ts")
        if ts is None:
            ts = self._find(channel, d)
            if ts is None:
                ts = self._post(channel, d, message)
            else:
                self._update(channel, str(ts), message, d)
            state["ts"] = ts
        elif entry.events or self._due(d.id):
            try:
                self._update(channel, str(ts), message, d)
            except SlackApiError as exc:
                if exc.response.get("error") not in _GONE:
                    raise
                state["ts"] = ts = self._post(channel, d, message)  # someone deleted it
        reply = thread_lines(entry.events)
        if reply is not None:
            self.client.chat_postMessage(
                channel=channel,
                thread_ts=str(ts),
                text=reply,
                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": reply}}],
            )

    def _message(self, d: Deployment) -> Message:
        approvers = None
        if self.approvers is not None and d.waiting_at:
            try:
                approvers = self.approvers(d)
            except Exception:  # who may approve is a courtesy in the message
                approvers = None
        return deployment_message(d, self.settings, approvers)

    def _due(self, deployment_id: str) -> bool:
        last = self._updated.get(deployment_id)
        return last is None or self.clock() - last >= self.progress_every_s

    def _post(self, channel: str, d: Deployment, message: Message) -> str:
        answer = self.client.chat_postMessage(
            channel=channel,
            metadata={"event_type": METADATA_TYPE, "event_payload": {"deployment_id": d.id}},
            unfurl_links=False,
            **message.payload(),
        )
        self._updated[d.id] = self.clock()
        return str(answer["ts"])

    def _update(self, channel: str, ts: str, message: Message, d: Deployment) -> None:
        self.client.chat_update(channel=channel, ts=ts, **message.payload())
        self._updated[d.id] = self.clock()
        if not d.active:
            self._updated.pop(d.id, None)

    def _find(self, channel: str, d: Deployment) -> str | None:
        """The ts of the message already posted for `d` in `channel` (its metadata names
        it), or None. Needs `channels:history`; without it, None."""
        oldest = datetime.fromisoformat(d.created_at).timestamp() - _FIND_SLACK_S
        cursor: str | None = None
        for _ in range(_FIND_PAGES):
            try:
                page = self.client.conversations_history(
                    channel=channel,
                    oldest=f"{oldest:.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            except SlackApiError as exc:
                if exc.response.status_code == 429:
                    raise
                log.warning("cannot read %s's history: %s", channel, exc.response.get("error"))
                return None
            for message in page.get("messages") or []:
                meta = message.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if meta.get("event_type") == METADATA_TYPE and payload.get("deployment_id") == d.id:
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        return None
