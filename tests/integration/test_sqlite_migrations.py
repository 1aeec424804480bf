"""mmm's SQLite files record their migrations as sqlite-utils' `Migrations` did (the same
table, columns and index), so files made before mmm ran its own migrations open as they are."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from core.sqlite_db import Migrations, open_db
from core.store.sqlite import SqliteStore
from core.store.sqlite_schema import migrations as state_migrations
from tests.support.bulk import bulk_insert, drafts


def applied(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT migration_set, name FROM _sqlite_migrations ORDER BY id")
        return list(rows)


def test_a_state_file_migrated_by_sqlite_utils_opens_without_migrating_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    legacy = sqlite_utils.Migrations("mmm-state")  # the set the store had, step by step
    steps = list(state_migrations)
    for name, fn in steps:
        legacy(name=name)(fn)
    db = sqlite_utils.Database(path)
    legacy.apply(db)
    db.close()
    before = applied(path)
    assert [name for _, name in before] == [name for name, _ in steps]

    store = SqliteStore(path)  # a migration run twice would fail: its tables exist
    bulk_insert(store, drafts(3))
    assert len(store.recent(limit=10)) == 3
    store.close()
    assert applied(path) == before


def test_migrations_run_once_in_order_and_a_failing_one_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    ran: list[str] = []
    first = Migrations("set")

    @first()
    def m001(db: sqlite3.Connection) -> None:
        ran.append("m001")
        db.execute("CREATE TABLE a (x)")

    open_db(path, first).close()
    open_db(path, first).close()
    assert ran == ["m001"] and applied(path) == [("set", "m001")]

    second = Migrations("set")
    second()(m001)

    @second()
    def m002(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE b (x)")
        raise RuntimeError("half done")

    with pytest.raises(RuntimeError):
        open_db(path, second)
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "b" not in tables and "a" in tables
    assert applied(path) == [("set", "m001")]


def test_a_migration_name_is_registered_once() -> None:
    twice = Migrations("set")

    @twice()
    def m001(db: sqlite3.Connection) -> None: ...

    with pytest.raises(ValueError, match="already"):
        twice()(m001)
