"""The Store on each backend, for the one store suite every backend must pass: SQLite on a
file, and DynamoDB on the test session's moto server (over HTTP, as boto3 reaches AWS).

`open_store()` gives a new store object on the same state each call (another process's
view: a second SqliteStore on the file, a second DynamoStore on the table).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.store import Store
from core.store.dynamodb import DynamoStore
from core.store.sqlite import SqliteStore
from tests.support.moto_server import Aws

BACKENDS = ["sqlite", "dynamodb"]
TABLE = "mmm-state"

OpenStore = Callable[[], Store]


@pytest.fixture(params=BACKENDS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    opened: list[Store] = []

    def open_one() -> Store:
        store: Store
        if request.param == "sqlite":
            store = SqliteStore(tmp_path / "state.db")
        else:
            aws: Aws = request.getfixturevalue("aws")
            store = DynamoStore(aws.clients, TABLE)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()
