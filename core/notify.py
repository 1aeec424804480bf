"""Notifications: the change feed (core.feed) delivered to the notifier (a Slack message per
deployment), from a durable cursor of their own, outside any worker's lease.

A slow or failing notifier never holds a rollout up, and one killed at any
point resumes from its cursor: an entry is delivered at least once, and in
order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from core.domain import Deployment
from core.feed import FeedEntry
from core.ports import Notifier, TransientError
from core.store import Store

log = logging.getLogger("mmm.notify")


class SilentNotifier:
    """The embedded default: the change feed itself is the notification (the dashboard and
    `mmm status` read it); nothing is sent anywhere."""

    def deliver(
        self, entry: FeedEntry, deployment: Deployment, kept: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        return None


def cursor_lease(consumer: str) -> str:
    """The lease a consumer of the feed holds while it delivers: whoever else holds it (a
    front end recording where a new deployment is to be announced) keeps it waiting."""
    return f"feed:{consumer}"


class Notifications:
    """Delivers the feed to a notifier, from a durable cursor named `name`.

    Several processes may run it: a lease on the cursor lets one deliver at a time. What
    the notifier returns for a deployment (a Slack message's channel and ts) is kept per
    deployment and handed back with the next entry of that deployment."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        name: str = "notifier",
        owner: str | None = None,
        lease_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.name = name
        self.owner = owner or f"{name}-{id(self):x}"
        self.lease_s = lease_s
        self.clock = clock

    @property
    def _lease(self) -> str:
        return cursor_lease(self.name)

    def run_once(self, limit: int = 200) -> int:
        """Deliver what is new (at most `limit` entries); returns how many were delivered.
        0 when another process holds the cursor."""
        if not self.store.acquire_lease(self._lease, self.owner, self.lease_s, self.clock()):
            return 0
        delivered = 0
        try:
            cursor = self.store.cursor(self.name)
            for entry in self.store.changes_since(cursor, limit):
                deployment = self.store.get(entry.deployment_id)
                if deployment is None:
                    continue
                kept = self.store.delivery(self.name, entry.deployment_id)
                try:
                    new = self.notifier.deliver(entry, deployment, kept)
                except TransientError as exc:
                    log.warning("notifier %s: %s (will retry entry %d)", self.name, exc, entry.seq)
                    break
                except Exception:  # a broken notifier must not stop the feed for ever
                    log.exception("notifier %s failed on entry %d; skipped", self.name, entry.seq)
                    new = kept
                if new is not None and new != kept:
                    self.store.set_delivery(self.name, entry.deployment_id, new)
                # After the delivery: a crash in between delivers this entry again, never loses it.
                self.store.set_cursor(self.name, entry.seq)
                delivered += 1
                # Keep the cursor ours while a slow notifier works through a long backlog.
                self.store.acquire_lease(self._lease, self.owner, self.lease_s, self.clock())
        finally:
            self.store.release_lease(self._lease, self.owner)
        return delivered

    def run_forever(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Deliver until `stop` is set, then what is left, and return."""
        while True:
            try:
                busy = self.run_once()
            except Exception:  # the store was busy, the notifier broke: try again later
                log.exception("notifications %s failed; trying again", self.name)
                busy = 0
            if stop.is_set() and not busy:
                return
            if not busy:
                stop.wait(poll_s)

    @contextmanager
    def running(self, poll_s: float = 0.5, drain_s: float = 10.0) -> Iterator[None]:
        """Follow the feed in a background thread while the block runs, then wait up to
        `drain_s` for what is left to go out (a stuck notifier delays the exit that long at
        most; its cursor keeps the rest for the next run). Nothing runs for the silent one."""
        if isinstance(self.notifier, SilentNotifier):
            yield
            return
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run_forever, args=(stop, poll_s), name=f"feed-{self.name}", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(drain_s)
            if thread.is_alive():
                log.warning("notifications %s: still delivering; the next run goes on", self.name)
