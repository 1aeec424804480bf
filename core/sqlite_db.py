"""SQLite files of the workspace shared by the gateway and the other processes (WAL)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils
from sqlite_utils import Migrations

from core.ports import PortError, TransientError

# The schema version (SQLite's schema cookie) each file had right after this process brought it
# up to date, per set of migrations: a connection opened later finds the same version and skips
# the migrations (and the write lock they take). A file deleted and made again, or changed by
# another process, shows another version and is brought up to date again.
_migrated: dict[tuple[str, tuple[str, ...]], int] = {}
_migrated_lock = threading.Lock()


def open_db(path: Path, *migrations: Migrations) -> sqlite_utils.Database:
    """Open (creating if needed) a WAL database usable from any thread, schema brought up to date.

    Migrations are applied once per process and file: later connections to a file this
    process has migrated only read its schema version.
    The connection is in autocommit mode: every write that must not half-happen runs in
    `write_transaction`. Callers serialise their own use of the connection across threads.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        # No sqlite-utils plugins: looking for them reads every installed package's metadata.
        db = sqlite_utils.Database(conn, execute_plugins=False)
        db.enable_wal()
        if migrations:
            _bring_up_to_date(db, path, migrations)
    except sqlite3.OperationalError as exc:
        raise TransientError(f"{path}: cannot open the database ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise PortError(f"{path}: not a usable SQLite database ({exc})") from None
    return db


def _bring_up_to_date(
    db: sqlite_utils.Database, path: Path, migrations: tuple[Migrations, ...]
) -> None:
    name = str(path)
    shared = name != ":memory:" and not name.startswith("file:")  # one memory DB per connection
    key = (str(path.resolve()) if shared else name, tuple(repr(m) for m in migrations))
    if shared:
        with _migrated_lock:
            known = _migrated.get(key)
        if known is not None and known == _schema_version(db):
            return
    # Two processes may open a fresh workspace at once: the write lock orders them.
    with write_transaction(db):
        for schema in migrations:
            schema.apply(db)
        version = _schema_version(db)
    if shared:
        with _migrated_lock:
            _migrated[key] = version


def _schema_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA schema_version").fetchone()[0])


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
