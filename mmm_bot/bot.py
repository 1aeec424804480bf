"""What the listeners share: the service to act through, the Web API client, a small pool
that does the work after the ack, and the bookkeeping that makes a request count once.

Slack wants an answer within 3 seconds: a listener acks, then hands its work here
(`later`), so the request path never waits on the store, a registry or Slack itself.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from core.domain import AuditRecord, iso, utcnow
from core.notify import cursor_lease
from core.service import Service
from mmm_bot.blocks import Message
from mmm_bot.config import WEB_API_TIMEOUT_S, SlackConfig
from mmm_bot.identity import SlackService, SlackUser, slack_user

log = logging.getLogger("mmm.bot")

# How long the bot may hold the notifier's cursor while it records where a new deployment
# is announced, and how long it waits for it.
_ANNOUNCE_HOLD_S = 30.0
_CLAIM_PREFIX = "slack:"


@dataclass(frozen=True)
class Origin:
    """Where a request came from: who sent it, from which channel, where to answer them,
    and the key that says two deliveries of it are one request."""

    user: SlackUser
    channel: str | None
    response_url: str | None
    key: str
    team: str | None = None  # the Slack workspace it was made from


class Bot:
    """The bot's state, shared by every listener: built once per process from the service
    the composition root made (its workspace, store and ports), acting per request as the
    Slack user's mmm identity."""

    def __init__(
        self,
        base: Service,
        config: SlackConfig,
        workers: int = 4,
        client: WebClient | None = None,
    ) -> None:
        self.base = base
        self.settings = base.ws.settings.slack
        self.client = client or config.web_client()
        # Consumers of the feed are named; the notifier that posts our messages is this one.
        self.consumer = base.notifications().name
        self.lease_s = base.ws.settings.worker.lease_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmm-bot")
        self._busy = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------ who acts

    def user(self, user_id: str) -> SlackUser:
        return slack_user(self.settings, user_id)

    def foreign(self, origin: Origin) -> str | None:
        """Why a request from `origin` is not answered (another Slack workspace than
        `slack.team_id`); None when it is."""
        ours = self.settings.team_id
        if ours is None or origin.team == ours:
            return None
        return (
            f"this mmm answers Slack workspace {ours} only, not {origin.team or 'an unnamed one'}"
        )

    def service(self, user: SlackUser) -> SlackService:
        """The service acting as `user` (who must be mapped)."""
        return SlackService(self.base, user)

    def reader(self) -> Service:
        """The service for reads anyone may make (status, help)."""
        return self.base

    # ------------------------------------------------------------ work after the ack

    def later(self, work: Callable[[], None]) -> None:
        """Run `work` off the request path; an exception is logged, never raised."""

        def run() -> None:
            try:
                work()
            except Exception:
                log.exception("a Slack request failed after its ack")
            finally:
                with self._lock:
                    self._busy -= 1

        with self._lock:
            self._busy += 1
        self._pool.submit(run)

    @property
    def busy(self) -> int:
        """Requests acked whose work has not finished."""
        with self._lock:
            return self._busy

    def close(self, wait: bool = True) -> None:
        """Stop taking work; finish (or with `wait=False`, drop) what is queued."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    # ------------------------------------------------------------ counting once

    def claim(self, key: str) -> bool:
        """True the first time `key` is claimed, in any process sharing the store; False for
        every repeat (a Slack retry, a second click on a one-shot button)."""
        token = uuid.uuid4().hex
        kept = self.base.store.remember(_CLAIM_PREFIX + key, "", lambda: {"by": token})
        return kept.get("by") == token

    # ------------------------------------------------------------ answers

    def respond(self, origin: Origin, message: Message, replace_original: bool = False) -> None:
        """Answer the user who asked, and only them (`response_url`, ephemeral);
        `replace_original`: in place of the ephemeral message whose button they clicked."""
        if not origin.response_url:
            log.warning("no response_url to answer %s", origin.user.user_id)
            return
        body: dict[str, Any] = {"response_type": "ephemeral", **message.payload()}
        body["replace_original"] = replace_original
        try:
            answer = WebhookClient(origin.response_url, timeout=WEB_API_TIMEOUT_S).send_dict(body)
        except Exception as exc:  # the answer is a courtesy: the action itself stands
            log.warning("could not answer %s: %s", origin.user.user_id, type(exc).__name__)
            return
        if answer.status_code >= 300:
            log.warning("answer to %s refused: HTTP %s", origin.user.user_id, answer.status_code)

    def audit_refusal(self, origin: Origin, action: str, target: str, reason: str) -> None:
        """Record a request refused before it reached the service (an unmapped user)."""
        actor = origin.user.identity or f"slack:{origin.user.user_id}"
        record = AuditRecord(
            at=iso(utcnow()),
            actor=actor,
            action=f"{action}_refused",
            target=target,
            detail={"slack_user": origin.user.user_id, "reason": reason},
        )
        self.base.store.audit(record)

    # ------------------------------------------------------------ where messages go

    @contextmanager
    def announcing(self) -> Iterator[None]:
        """Hold the notifier's cursor while a deployment is created and its channel recorded
        (`announce`), so the notifier never sees the new deployment before it knows where to
        post it (and posts it elsewhere, or twice). Gives up waiting after a while: at worst
        the first message goes to `slack.channel`."""
        lease = cursor_lease(self.consumer)
        owner = f"mmm-bot-{uuid.uuid4().hex[:8]}"
        store = self.base.store
        deadline = time.monotonic() + _ANNOUNCE_HOLD_S
        held = False
        while not held:
            held = store.acquire_lease(lease, owner, _ANNOUNCE_HOLD_S, time.time())
            if held or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not held:
            log.warning("the notifier kept its cursor; announcing without it")
        try:
            yield
        finally:
            if held:
                store.release_lease(lease, owner)

    def announce(self, deployment_id: str, channel: str) -> None:
        """Have the notifier post `deployment_id`'s message in `channel`."""
        self.base.store.set_delivery(self.consumer, deployment_id, {"channel": channel})
