"""SQLite files of the workspace shared by the gateway and the other processes (WAL)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from core.ports import PortError, TransientError

Migration = Callable[[sqlite3.Connection], None]

# Where applied migrations are recorded: the table, columns and index sqlite-utils'
# `Migrations` uses, which made the files of workspaces before this module had its own.
_RECORDS = (
    "CREATE TABLE IF NOT EXISTS _sqlite_migrations (id INTEGER PRIMARY KEY, "
    "migration_set TEXT, name TEXT, applied_at TEXT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx__sqlite_migrations_migration_set_name "
    "ON _sqlite_migrations (migration_set, name)",
)


class Migrations:
    """A named, ordered set of schema changes, each applied once per file.

    `@migrations()` registers a function taking the connection; `apply` runs those not
    yet recorded, in order, recording each. The caller holds the write transaction, so a
    failing migration leaves no change and no record.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._steps: list[tuple[str, Migration]] = []

    def __call__(self) -> Callable[[Migration], Migration]:
        def register(fn: Migration) -> Migration:
            if any(name == fn.__name__ for name, _ in self._steps):
                raise ValueError(f"migration {fn.__name__} is already in set {self.name}")
            self._steps.append((fn.__name__, fn))
            return fn

        return register

    def apply(self, db: sqlite3.Connection) -> None:
        for statement in _RECORDS:
            db.execute(statement)
        rows = db.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", (self.name,)
        )
        applied = {name for (name,) in rows}
        for name, fn in self._steps:
            if name not in applied:
                fn(db)
                db.execute(
                    "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                    "VALUES (?, ?, ?)",
                    (self.name, name, str(datetime.now(UTC))),
                )

    def __iter__(self) -> Iterator[tuple[str, Migration]]:
        return iter(self._steps)

    def __repr__(self) -> str:
        return f"<Migrations {self.name!r}: [{', '.join(name for name, _ in self._steps)}]>"


# The schema version (SQLite's schema cookie) each file had right after this process brought it
# up to date, per set of migrations: a connection opened later finds the same version and skips
# the migrations (and the write lock they take). A file deleted and made again, or changed by
# another process, shows another version and is brought up to date again.
_migrated: dict[tuple[str, tuple[str, ...]], int] = {}
_migrated_lock = threading.Lock()


def open_db(path: Path, *migrations: Migrations) -> sqlite3.Connection:
    """Open (creating if needed) a WAL database usable from any thread, schema brought up to date.

    Migrations are applied once per process and file: later connections to a file this
    process has migrated only read its schema version.
    The connection is in autocommit mode: every write that must not half-happen runs in
    `write_transaction`. Callers serialise their own use of the connection across threads.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # once per file
            db.execute("PRAGMA journal_mode=wal")
        if migrations:
            _bring_up_to_date(db, path, migrations)
    except sqlite3.OperationalError as exc:
        raise TransientError(f"{path}: cannot open the database ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise PortError(f"{path}: not a usable SQLite database ({exc})") from None
    return db


def _bring_up_to_date(
    db: sqlite3.Connection, path: Path, migrations: tuple[Migrations, ...]
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


def _schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA schema_version").fetchone()[0])


@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE`: take the write lock before reading, so read-modify-write is atomic."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """Turn sqlite3 errors into port errors that name the file."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise TransientError(f"{path}: database busy or unavailable ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise PortError(f"{path}: database error ({exc})") from None
