"""`mmm migrate-state`: a workspace's SQLite state copied whole into its DynamoDB table, so
a team moves up without losing history.

What is copied: every deployment with its revision, the locks of those still active, the
audit history and the change feed with their numbers (so the cursors of the feed's
consumers, copied too, still point where they did), the deliveries kept for messages, the
command log and the remembered reads (so a deployment half way resumes on DynamoDB
exactly as it would have on SQLite), and the usage index. Leases and worker heartbeats are
not: workers take new ones. Run it with every worker stopped.

The table must hold no mmm state yet. The copy claims it first, writes every item (the
same items again if it is run again after an interruption), and ends by starting the
table's sequence after the highest number copied, which is what makes the table the
store's: a copy that did not end leaves a table no store would mistake for finished.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.domain import AuditRecord, UsageSite
from core.store import load_record
from core.store.dynamodb import DynamoStore
from core.store.dynamodb_table import (
    audit_item,
    command_item,
    cursor_item,
    delivery_item,
    deployment_item,
    feed_item,
    held_locks_item,
    intent_item,
    lock_item,
    usage_item,
)
from core.store.sqlite import SqliteStore
from core.store.sqlite_rows import SUMMARY_COLUMNS


class Copied(BaseModel):
    """How many of each were copied."""

    deployments: int = 0
    active: int = 0
    locks: int = 0
    audit_records: int = 0
    feed_entries: int = 0
    commands: int = 0
    remembered: int = 0
    cursors: int = 0
    deliveries: int = 0
    usage_models: int = 0
    last_seq: int = 0  # the highest audit or feed number copied: the table goes on after it

    def summary(self) -> str:
        return (
            f"{self.deployments} deployments ({self.active} active, {self.locks} locks), "
            f"{self.audit_records} audit records, {self.feed_entries} feed entries, "
            f"{self.commands} logged commands, {self.cursors} cursors, "
            f"{self.usage_models} models' usage"
        )


def copy_state(source: SqliteStore, dest: DynamoStore) -> Copied:
    """Copy everything `source` holds into `dest` (see the module). Raises StoreError when
    `dest` holds other state."""
    name = str(Path(source.path).resolve())
    dest.claim_for_copy(name)
    db = source.db
    copied = Copied()

    columns = ", ".join(SUMMARY_COLUMNS)
    rows = db.execute(f"SELECT body, {columns} FROM deployments ORDER BY rowid").fetchall()
    deployments = [load_record(r[0], dict(zip(SUMMARY_COLUMNS, r[1:], strict=True))) for r in rows]
    active = {d.id for d in deployments if d.active}
    copied.deployments = dest.write_items(deployment_item(d) for d in deployments)
    copied.active = len(active)

    holders: dict[str, dict[str, tuple[str, bool]]] = defaultdict(dict)
    held: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for lock, deployment_id, by, shared in db.execute(
        "SELECT name, deployment_id, by, shared FROM locks ORDER BY name, deployment_id"
    ).fetchall():
        if deployment_id in active:  # a lock outlives no deployment on DynamoDB
            holders[lock][deployment_id] = (by, bool(shared))
            held[deployment_id].append((lock, bool(shared)))
    copied.locks = dest.write_items(lock_item(n, h) for n, h in holders.items())
    dest.write_items(held_locks_item(i, locks) for i, locks in held.items())

    audit = db.execute("SELECT id, at, actor, action, target, detail FROM audit").fetchall()
    copied.audit_records = dest.write_items(
        audit_item(AuditRecord(at=a, actor=b, action=c, target=t, detail=json.loads(x)), n)
        for n, a, b, c, t, x in audit
    )
    feed = db.execute("SELECT seq, body FROM changes").fetchall()
    copied.feed_entries = dest.write_items(feed_item(body, seq) for seq, body in feed)

    commands = db.execute("SELECT key, deployment_id, result, at FROM commands").fetchall()
    copied.commands = dest.write_items(
        command_item(k, i, json.loads(r), at) for k, i, r, at in commands
    )
    intents = db.execute("SELECT key, deployment_id, body FROM intents").fetchall()
    copied.remembered = dest.write_items(intent_item(k, i, json.loads(b)) for k, i, b in intents)
    cursors = db.execute("SELECT consumer, seq FROM cursors").fetchall()
    copied.cursors = dest.write_items(cursor_item(c, s) for c, s in cursors)
    deliveries = db.execute("SELECT consumer, deployment_id, body FROM deliveries").fetchall()
    copied.deliveries = dest.write_items(
        delivery_item(c, i, json.loads(b)) for c, i, b in deliveries
    )
    copied.usage_models = dest.write_items(_usage_items(source))

    highest = [n for n, *_ in audit] + [seq for seq, _ in feed]
    copied.last_seq = max(highest, default=0)
    dest.finish_copy(name, copied.last_seq)
    return copied


def _usage_items(source: SqliteStore) -> list[dict[str, Any]]:
    by_model: dict[str, list[UsageSite]] = defaultdict(list)
    offset = 0
    while page := source.usage_index(offset=offset, limit=1000):
        for site in page:
            by_model[site.model].append(site)
        offset += len(page)
    return [usage_item(model, sites) for model, sites in by_model.items()]
