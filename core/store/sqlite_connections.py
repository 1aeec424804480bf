"""The connections a SQLite store has open: one per thread, closed when the thread ends."""

from __future__ import annotations

import os
import sqlite3
import threading


class Connections:
    """The connections a store has open, one per thread that used it.

    A thread keeps its connection in the store's thread-local data, inside a `Held`: when
    the thread ends, Python drops that data, and the `Held`'s finalizer closes the
    connection. `close_all` closes those of threads still running (the store's `close`)."""

    def __init__(self) -> None:
        # Reentrant: a finalizer may run (garbage collection) while this thread holds it.
        self._lock = threading.RLock()
        self._open: dict[int, sqlite3.Connection] = {}
        self._next = 0
        self._pid = os.getpid()

    def add(self, db: sqlite3.Connection) -> int:
        with self._lock:
            self._next += 1
            self._open[self._next] = db
            return self._next

    def release(self, key: int) -> None:
        # In a child forked to run a program (subprocess with preexec_fn), Python drops the
        # other threads' data right after the fork, which runs this finalizer: there the lock
        # and SQLite's own mutexes may be held by threads that no longer exist. Touch nothing:
        # the child is about to exec, and the connections are the parent's.
        if os.getpid() != self._pid:
            return
        with self._lock:
            db = self._open.pop(key, None)
        if db is not None:
            db.close()

    def close_all(self) -> None:
        with self._lock:
            dbs = list(self._open.values())
            self._open.clear()
        for db in dbs:
            db.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)


class Held:
    """A thread's connection, as its thread-local data holds it."""

    __slots__ = ("__weakref__", "db")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
