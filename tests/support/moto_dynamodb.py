"""What moto 5.2's DynamoDB lacks for a store shared by many threads, added to its backend
(the threaded server serves it too). Installed once by tests.support.moto_server.

moto runs a TransactWriteItems by deep-copying each table it touches, applying the items
one by one, and on a failed condition putting the copies back: with requests served in
threads, a transaction that fails wipes out whatever another request wrote meanwhile, and
a read meanwhile sees a transaction half-applied. DynamoDB's transactions are isolated.
Here every call that reads or writes items runs under one lock, so each is isolated from
the others as on DynamoDB (serialised, which DynamoDB's isolation allows).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb import models as ddb_models

_LOCK = threading.RLock()
_CALLS = ("get_item", "put_item", "update_item", "delete_item", "query", "scan",
          "transact_write_items")  # fmt: skip
_installed = False


def _isolated(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return call(*args, **kwargs)

    return run


def install() -> None:
    """Patch moto's DynamoDB backend (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    backend = ddb_models.DynamoDBBackend
    for name in _CALLS:
        setattr(backend, name, _isolated(getattr(backend, name)))
