"""SQLite files of the workspace shared by the gateway and the other processes (WAL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils
from sqlite_utils import Migrations

from core.ports import PortError, TransientError


def open_db(path: Path, *migrations: Migrations) -> sqlite_utils.Database:
    """Open (creating if needed) a WAL database usable from any thread, schema brought up to date.

    The connection is in autocommit mode: every write that must not half-happen runs in
    `write_transaction`. Callers serialise their own use of the connection across threads.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        db.enable_wal()
        # Two processes may open a fresh workspace at once: the write lock orders them.
        with write_transaction(db):
            for schema in migrations:
                schema.apply(db)
    except sqlite3.OperationalError as exc:
        raise TransientError(f"{path}: cannot open the database ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise PortError(f"{path}: not a usable SQLite database ({exc})") from None
    return db


@contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """`BEGIN IMMEDIATE`: take the write lock before reading, so read-modify-write is atomic."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


@contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """Turn sqlite3 errors into port errors that name the file."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise TransientError(f"{path}: database busy or unavailable ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise PortError(f"{path}: database error ({exc})") from None
