"""The DynamoDB store's one table: its keys, its indexes, and how a deployment is an item.

Every item has a partition key `pk` and a sort key `sk`:

| item            | pk                   | sk                  |
|-----------------|----------------------|---------------------|
| deployment      | `dep#<id>`           | `-`                 |
| lock            | `lock#<name>`        | `-`                 |
| lease           | `lease#<id or name>` | `-`                 |
| command result  | `cmd#<key>`          | `-`                 |
| remembered read | `intent#<key>`       | `-`                 |
| audit record    | `audit`              | `<seq>`, 20 digits  |
| feed entry      | `feed`               | `<seq>`, 20 digits  |
| the sequence    | `seq`                | `-`                 |
| usage of model  | `usage`              | `<model>`           |
| worker          | `workers`            | `<name>`            |
| feed cursor     | `cursors`            | `<consumer>`        |
| delivery        | `delivery#<consumer>`| `<deployment id>`   |

Deployments are listed through global secondary indexes whose sort key is the listing's
order (`lsort`: active first, then newest first), one per equality filter, so a filtered
page is a range of one index and never a scan. The `due` index holds only the deployments
a worker should look at (a sparse index: the others have no `due` attribute).
"""

from __future__ import annotations

import json
import zlib
from decimal import Decimal
from typing import Any

from core.domain import AuditRecord, Deployment, UsageSite

SEQ_DIGITS = 20
LISTED = "D"  # the one partition of the listing indexes

# What the listing indexes hold beside their keys: a page's filters are checked on them,
# and a record whose body cannot be read is listed from them (core.store.load_record).
SUMMARY = ("id", "kind", "model", "version", "endpoint", "state", "rev", "created_at", "updated_at")
_PROJECTED = [*SUMMARY, "search", "active"]

# index name -> (partition key, sort key); every key attribute is a string but `due`
INDEXES: dict[str, tuple[str, str]] = {
    "listing": ("lk", "lsort"),
    "recent": ("lk", "rsort"),
    "ids": ("lk", "id"),
    "by_model": ("model", "lsort"),
    "by_endpoint": ("endpoint", "lsort"),
    "by_state": ("state", "lsort"),
    "by_kind": ("kind", "lsort"),
    "due": ("due_k", "due"),
    "audit_target": ("target", "sk"),
}


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable's arguments for the store's table."""
    keys = {"pk", "sk"} | {k for pair in INDEXES.values() for k in pair}
    indexes = []
    for index, (partition, sort) in INDEXES.items():
        projection: dict[str, Any] = {"ProjectionType": "INCLUDE", "NonKeyAttributes": _PROJECTED}
        if index == "audit_target":
            projection = {"ProjectionType": "ALL"}  # audit records are small
        indexes.append(
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": partition, "KeyType": "HASH"},
                    {"AttributeName": sort, "KeyType": "RANGE"},
                ],
                "Projection": projection,
            }
        )
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": k, "AttributeType": "N" if k == "due" else "S"} for k in sorted(keys)
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": indexes,
    }


def seq_key(seq: int) -> str:
    return str(seq).zfill(SEQ_DIGITS)


def pack(data: Any) -> bytes:
    """JSON, compressed: a deployment's history compresses about tenfold, which keeps its
    item far below DynamoDB's 400 KB limit."""
    text = data if isinstance(data, str) else json.dumps(data)
    return zlib.compress(text.encode(), 6)


def unpack(blob: Any) -> str:
    raw = blob.value if hasattr(blob, "value") else blob  # boto3's Binary
    return zlib.decompress(bytes(raw)).decode()


def listing_order(active: bool, created_at: str, id_: str) -> str:
    # "1" sorts after "0": read backwards, active deployments come first, then the newest.
    return f"{int(active)}#{created_at}#{id_}"


def deployment_item(d: Deployment, locks: list[list[Any]] | None = None) -> dict[str, Any]:
    """The item of `d` (plain values: the store serialises them)."""
    item: dict[str, Any] = {
        "pk": f"dep#{d.id}",
        "sk": "-",
        "id": d.id,
        "kind": d.kind.value,
        "model": d.model,
        "version": str(d.version),
        "endpoint": d.endpoint,
        "state": d.state.value,
        "active": int(d.active),
        "rev": d.rev,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "body": pack(d.model_dump_json()),
        "lk": LISTED,
        "lsort": listing_order(d.active, d.created_at, d.id),
        "rsort": f"{d.created_at}#{d.id}",
        # the text filter's haystack: names are ASCII (core.names), matched without case
        "search": "\n".join([d.id, d.model, str(d.version), d.endpoint]).lower(),
    }
    due = d.due_at  # when it is due is the domain's rule: the index orders by it
    if due is not None:
        item["due_k"] = LISTED
        item["due"] = number(due)
    if locks is not None:
        item["locks"] = locks
    return item


def number(value: float) -> Decimal:
    """A float as DynamoDB takes a number (boto3 refuses floats: they may not round-trip)."""
    return Decimal(repr(float(value)))


# ---------------------------------------------------------------- the other items


def audit_item(record: AuditRecord, seq: int) -> dict[str, Any]:
    return {
        "pk": "audit",
        "sk": seq_key(seq),
        "at": record.at,
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "detail": json.dumps(record.detail),
    }


def feed_item(body: str, seq: int) -> dict[str, Any]:
    """`body`: the entry's JSON, without its seq (the key holds it)."""
    return {"pk": "feed", "sk": seq_key(seq), "body": body}


def held_locks_item(deployment_id: str, locks: list[tuple[str, bool]]) -> dict[str, Any]:
    """The locks a deployment holds (name, shared): what its end releases."""
    return {"pk": f"dep#{deployment_id}", "sk": "locks", "locks": [list(lk) for lk in locks]}


def lock_item(name: str, holders: dict[str, tuple[str, bool]]) -> dict[str, Any]:
    """A lock with its holders (deployment id -> (requested by, shared)), as the store's
    transactions leave it."""
    item: dict[str, Any] = {"pk": f"lock#{name}", "sk": "-", "n": len(holders)}
    for deployment_id, (by, shared) in holders.items():
        item[f"h:{deployment_id}"] = {"by": by, "shared": shared}
        if not shared:
            item["excl"] = deployment_id
    return item


def command_item(key: str, deployment_id: str, result: dict[str, Any], at: str) -> dict[str, Any]:
    return {"pk": f"cmd#{key}", "sk": "-", "deployment_id": deployment_id, "at": at,
            "result": pack(result)}  # fmt: skip


def intent_item(key: str, deployment_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"pk": f"intent#{key}", "sk": "-", "deployment_id": deployment_id, "body": pack(value)}


def usage_item(model: str, sites: list[UsageSite]) -> dict[str, Any]:
    """Every usage site of a model in one item: replacing them is one write."""
    return {"pk": "usage", "sk": model, "body": pack([s.model_dump(mode="json") for s in sites])}


def cursor_item(consumer: str, seq: int) -> dict[str, Any]:
    return {"pk": "cursors", "sk": consumer, "seq": seq}


def delivery_item(consumer: str, deployment_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"pk": f"delivery#{consumer}", "sk": deployment_id, "body": json.dumps(data)}
