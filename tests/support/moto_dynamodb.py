"""What moto 5.2's DynamoDB lacks for a store shared by many threads, added to its backend
(the threaded server serves it too). Installed once by tests.support.moto_server.

moto runs a TransactWriteItems by deep-copying each table it touches, applying the items
one by one, and on a failed condition putting the copies back: with requests served in
threads, a transaction that fails wipes out whatever another request wrote meanwhile, and
a read meanwhile sees a transaction half-applied; and copying the whole table makes each
transaction cost as much as the table is large. DynamoDB's transactions are isolated.
Here:

- every call that reads or writes items runs under one lock, so each is isolated from
  the others as on DynamoDB (serialised, which DynamoDB's isolation allows);
- TransactWriteItems checks every condition first and writes only when all hold (each
  item's condition reads the item as it was before the transaction, as on DynamoDB: one
  transaction never names an item twice), keeping a copy of just the items it writes
  to put back if a write is refused half way. Its errors are moto's own.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb import models as ddb_models
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)

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


def _key_of(backend: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    ops: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    errors: list[Any] = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        key = _key_of(backend, op_type, op)
        unique = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if unique in seen:
            raise MultipleTransactionsException()
        seen.add(unique)
        ops.append((op_type, op, key))
        current = backend.get_item(op["TableName"], key)
        condition = op.get("ConditionExpression")
        if condition is not None:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if not get_filter_expression(condition, names, values).expr(current):
                message = "The conditional request failed"
                errors.append(("ConditionalCheckFailed", message, None))
                continue
        errors.append((None, None, None))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    before = [(op["TableName"], key, backend.get_item(op["TableName"], key)) for _, op, key in ops]
    before = [(t, k, None if i is None else i.to_json()["Attributes"]) for t, k, i in before]
    try:
        for op_type, op, key in ops:
            table, names = op["TableName"], op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            if op_type == "Put":
                backend.put_item(table, op["Item"])
            elif op_type == "Delete":
                backend.delete_item(table, key)
            elif op_type == "Update":
                backend.update_item(
                    table,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
    except Exception:
        for table, key, attributes in before:  # as it was: nothing of it stays
            if attributes is None:
                backend.delete_item(table, key)
            else:
                backend.put_item(table, attributes)
        raise


def install() -> None:
    """Patch moto's DynamoDB backend (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    backend = ddb_models.DynamoDBBackend
    backend.transact_write_items = _transact_write_items  # type: ignore[method-assign,assignment]
    for name in _CALLS:
        setattr(backend, name, _isolated(getattr(backend, name)))
