"""Following the change feed from a thread: what changed, and whether a worker is alive."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.message import Message

from core.feed import FeedEntry
from core.service import Service


class FeedChanged(Message):
    """Deployments changed (in this process or any other that shares the store)."""

    def __init__(self, entries: list[FeedEntry]) -> None:
        super().__init__()
        self.entries = entries

    @property
    def deployment_ids(self) -> set[str]:
        return {e.deployment_id for e in self.entries}


class WorkerSeen(Message):
    """Whether a worker (`mmm up`, `mmm worker`) is alive, when that changes."""

    def __init__(self, alive: bool) -> None:
        super().__init__()
        self.alive = alive


class FeedFailed(Message):
    """The feed could not be read (the follower tries again)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


def follow(
    svc: Service,
    post: Callable[[Message], object],
    cancelled: Callable[[], bool],
    every_s: float = 0.25,
    workers_every_s: float = 2.0,
) -> None:
    """Post what the feed says from now on, every `every_s`, until `cancelled()`; and
    whether a worker is alive, every `workers_every_s`. Blocks: run it in a thread."""
    cursor: int | None = None
    alive: bool | None = None
    looked_at_workers = 0.0
    failing = False
    while not cancelled():
        try:
            if cursor is None:
                cursor = svc.last_change()
            entries = svc.changes(cursor)
            if entries:
                cursor = entries[-1].seq
                post(FeedChanged(entries))
            if time.monotonic() - looked_at_workers >= workers_every_s:
                looked_at_workers = time.monotonic()
                now_alive = svc.worker_running()
                if now_alive != alive:
                    alive = now_alive
                    post(WorkerSeen(now_alive))
            failing = False
        except Exception as exc:  # a busy or missing store: say so once, keep following
            if not failing:
                post(FeedFailed(str(exc)))
            failing = True
        _sleep(every_s, cancelled)


def _sleep(seconds: float, cancelled: Callable[[], bool]) -> None:
    # In short naps: quitting the app waits for this thread.
    end = time.monotonic() + seconds
    while not cancelled() and time.monotonic() < end:
        time.sleep(min(0.05, max(end - time.monotonic(), 0)))
