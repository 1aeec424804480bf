"""The Store on SQLite (sqlite-utils, WAL): one file in the workspace, shared by processes.

Every write that must not half-happen runs in one `BEGIN IMMEDIATE`
transaction, so a crash leaves either the old or the new state. Saves carry
the revision they were read at; a stale revision raises Conflict, so two
writers never both win.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.domain import AuditRecord, Deployment, UsageSite
from core.feed import FeedEntry, entry_between
from core.sqlite_db import open_db, write_transaction
from core.store import Busy, Conflict, DeploymentQuery, load_record
from core.store.sqlite_connections import Connections, Held
from core.store.sqlite_rows import (
    LISTING_ORDER,
    RECENT_ORDER,
    SUMMARY_COLUMNS,
    deployment_row,
    insert_deployments,
    where_clause,
)
from core.store.sqlite_schema import migrations


class SqliteStore:
    """One connection per thread (SQLite serialises writers across connections); a thread's
    connection closes when the thread ends, the others on `close()`."""

    counts_cheaply = True

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections = Connections()
        self.db  # noqa: B018  (opens the file and brings its schema up to date)

    @property
    def db(self) -> sqlite3.Connection:
        held: Held | None = getattr(self._local, "held", None)
        if held is None:
            db = open_db(self.path, migrations)
            held = Held(db)
            # The callback holds the registry, not the store: a store nobody closed can go.
            weakref.finalize(held, self._connections.release, self._connections.add(db))
            self._local.held = held
        return held.db

    @property
    def open_connections(self) -> int:
        """How many connections are open: one per thread that used the store and is running."""
        return len(self._connections)

    @contextmanager
    def _write(self) -> Iterator[None]:
        with write_transaction(self.db):
            yield

    def close(self) -> None:
        self._connections.close_all()
        self._local = threading.local()

    # ------------------------------------------------------------ deployments

    def _insert_audit(self, record: AuditRecord) -> None:
        self.db.execute(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            [record.at, record.actor, record.action, record.target, json.dumps(record.detail)],
        )

    def create(
        self, d: Deployment, locks: list[str], audit: AuditRecord, shared: Sequence[str] = ()
    ) -> Deployment:
        with self._write():
            wanted = [(name, False) for name in locks] + [(name, True) for name in shared]
            for name, is_shared in wanted:
                # shared goes with shared; anything else waits for the holder to end
                row = self.db.execute(
                    "SELECT l.deployment_id, l.by FROM locks l JOIN deployments d "
                    "ON d.id = l.deployment_id WHERE l.name = ? AND d.active = 1 "
                    "AND NOT (l.shared = 1 AND ? = 1) LIMIT 1",
                    [name, int(is_shared)],
                ).fetchone()
                if row:
                    raise Busy(name, row[0], row[1])
                self.db.execute(
                    "INSERT OR REPLACE INTO locks (name, deployment_id, by, shared) "
                    "VALUES (?, ?, ?, ?)",
                    [name, d.id, d.requested_by, int(is_shared)],
                )
            d = d.model_copy(update={"rev": 1})
            insert_deployments(self.db, [d])
            self._insert_audit(audit)
            self._append(entry_between(None, d))
        return d

    def _append(self, entry: FeedEntry | None) -> None:
        if entry is not None:
            self.db.execute(
                "INSERT INTO changes (deployment_id, body) VALUES (?, ?)",
                [entry.deployment_id, entry.model_dump_json(exclude={"seq"})],
            )

    def save(
        self, d: Deployment, audit: AuditRecord | None = None, entry: FeedEntry | None = None
    ) -> Deployment:
        new = d.model_copy(update={"rev": d.rev + 1})
        row = deployment_row(new)
        with self._write():
            cur = self.db.execute(
                "UPDATE deployments SET state=?, active=?, due=?, rev=?, body=?, updated_at=? "
                "WHERE id=? AND rev=?",
                [
                    row["state"],
                    row["active"],
                    row["due"],
                    row["rev"],
                    row["body"],
                    row["updated_at"],
                    d.id,
                    d.rev,
                ],
            )
            if cur.rowcount != 1:
                raise Conflict(f"{d.id} was changed by someone else (revision {d.rev} is stale)")
            if not new.active:
                self.db.execute("DELETE FROM locks WHERE deployment_id = ?", [d.id])
                self.db.execute("DELETE FROM leases WHERE deployment_id = ?", [d.id])
            if audit is not None:
                self._insert_audit(audit)
            if entry is not None:
                self._append(entry.model_copy(update={"rev": new.rev}))
        return new

    def _load(self, rows: list[Any]) -> list[Deployment]:
        return [load_record(r[0], dict(zip(SUMMARY_COLUMNS, r[1:], strict=True))) for r in rows]

    def _select(self, where: str, params: list[Any]) -> list[Deployment]:
        columns = ", ".join(SUMMARY_COLUMNS)
        sql = f"SELECT body, {columns} FROM deployments {where}"
        return self._load(self.db.execute(sql, params).fetchall())

    def get(self, deployment_id: str) -> Deployment | None:
        found = self._select("WHERE id = ?", [deployment_id])
        return found[0] if found else None

    def find(self, prefix: str) -> list[Deployment]:
        return self._select("WHERE id >= ? AND id < ? ORDER BY id", [prefix, prefix + "\uffff"])

    def _page(
        self, where: str, params: list[Any], order: str, limit: int, offset: int = 0
    ) -> list[Deployment]:
        sql, values = self._page_sql(where, params, order, limit, offset)
        return self._load(self.db.execute(sql, values).fetchall())

    @staticmethod
    def _page_sql(
        where: str, params: list[Any], order: str, limit: int, offset: int
    ) -> tuple[str, list[Any]]:
        # Choose the page on the indexes alone (rowids), then read just its records: the
        # records, with their bodies, of the rows skipped or filtered out are never read.
        columns = ", ".join(f"d.{c}" for c in SUMMARY_COLUMNS)
        outer = ", ".join(f"d.{term}" for term in order.split(", "))
        sql = (
            f"SELECT d.body, {columns} FROM (SELECT rowid AS r FROM deployments {where} "
            f"ORDER BY {order} LIMIT ? OFFSET ?) AS page "
            f"JOIN deployments AS d ON d.rowid = page.r ORDER BY {outer}"
        )
        return sql, [*params, limit, offset]

    def recent(self, active_only: bool = False, limit: int = 200) -> list[Deployment]:
        where = "WHERE active = 1" if active_only else ""
        return self._page(where, [], RECENT_ORDER, limit)

    def deployments(self, query: DeploymentQuery) -> list[Deployment]:
        where, params = where_clause(query)
        return self._page(where, params, LISTING_ORDER, query.limit, query.offset)

    def count(self, query: DeploymentQuery) -> int:
        where, params = where_clause(query)
        return int(
            self.db.execute(f"SELECT COUNT(*) FROM deployments {where}", params).fetchone()[0]
        )

    def explain(self, query: DeploymentQuery, counting: bool = False) -> list[str]:
        """SQLite's query plan for `deployments(query)` (or `count(query)`), one line a step."""
        where, params = where_clause(query)
        if counting:
            sql, params = f"SELECT COUNT(*) FROM deployments {where}", params
        else:
            sql, params = self._page_sql(where, params, LISTING_ORDER, query.limit, query.offset)
        return [str(r[3]) for r in self.db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]

    def runnable(self, now: float) -> list[str]:
        rows = self.db.execute(
            "SELECT id FROM deployments WHERE active = 1 AND due IS NOT NULL AND due <= ? "
            "ORDER BY created_at",
            [now],
        ).fetchall()
        return [r[0] for r in rows]

    def next_due(self) -> float | None:
        row = self.db.execute(
            "SELECT MIN(due) FROM deployments WHERE active = 1 AND due IS NOT NULL"
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    # ------------------------------------------------------------ the change feed

    def changes_since(self, cursor: int, limit: int = 500) -> list[FeedEntry]:
        rows = self.db.execute(
            "SELECT seq, body FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", [cursor, limit]
        ).fetchall()
        return [FeedEntry.model_validate_json(r[1]).model_copy(update={"seq": r[0]}) for r in rows]

    def last_change(self) -> int:
        row = self.db.execute("SELECT MAX(seq) FROM changes").fetchone()
        return int(row[0] or 0)

    def cursor(self, consumer: str) -> int:
        row = self.db.execute("SELECT seq FROM cursors WHERE consumer = ?", [consumer]).fetchone()
        return int(row[0]) if row else 0

    def set_cursor(self, consumer: str, seq: int) -> None:
        with self._write():
            self.db.execute(
                "INSERT INTO cursors (consumer, seq) VALUES (?, ?) "
                "ON CONFLICT(consumer) DO UPDATE SET seq = excluded.seq",
                [consumer, seq],
            )

    def delivery(self, consumer: str, deployment_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT body FROM deliveries WHERE consumer = ? AND deployment_id = ?",
            [consumer, deployment_id],
        ).fetchone()
        return dict(json.loads(row[0])) if row else None

    def set_delivery(self, consumer: str, deployment_id: str, data: dict[str, Any]) -> None:
        with self._write():
            self.db.execute(
                "INSERT INTO deliveries (consumer, deployment_id, body) VALUES (?, ?, ?) "
                "ON CONFLICT(consumer, deployment_id) DO UPDATE SET body = excluded.body",
                [consumer, deployment_id, json.dumps(data)],
            )

    # ------------------------------------------------------------ leases

    def acquire_lease(self, deployment_id: str, owner: str, ttl_s: float, now: float) -> bool:
        with self._write():
            cur = self.db.execute(
                "INSERT INTO leases (deployment_id, owner, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(deployment_id) DO UPDATE SET owner = excluded.owner, "
                "expires = excluded.expires WHERE leases.owner = excluded.owner "
                "OR leases.expires < ?",
                [deployment_id, owner, now + ttl_s, now],
            )
            return cur.rowcount == 1

    def release_lease(self, deployment_id: str, owner: str) -> None:
        with self._write():
            self.db.execute(
                "DELETE FROM leases WHERE deployment_id = ? AND owner = ?", [deployment_id, owner]
            )

    # ------------------------------------------------------------ command log

    def command_result(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT result FROM commands WHERE key = ?", [key]).fetchone()
        return json.loads(row[0]) if row else None

    def record_command(self, key: str, deployment_id: str, result: dict[str, Any], at: str) -> None:
        with self._write():
            self.db.execute(
                "INSERT OR IGNORE INTO commands (key, deployment_id, result, at) VALUES (?, ?, ?, ?)",
                [key, deployment_id, json.dumps(result), at],
            )

    def remember(
        self, key: str, deployment_id: str, compute: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        sql = "SELECT body FROM intents WHERE key = ?"
        row = self.db.execute(sql, [key]).fetchone()
        if row is None:
            value = json.dumps(compute())  # outside the write lock: it may read other systems
            with self._write():
                self.db.execute(
                    "INSERT OR IGNORE INTO intents (key, deployment_id, body) VALUES (?, ?, ?)",
                    [key, deployment_id, value],
                )
                row = self.db.execute(sql, [key]).fetchone()
        return dict(json.loads(row[0]))

    # ------------------------------------------------------------ audit

    def audit(self, record: AuditRecord) -> None:
        with self._write():
            self._insert_audit(record)

    def audit_log(
        self, target: str | None = None, limit: int = 500, offset: int = 0
    ) -> list[AuditRecord]:
        sql = "SELECT at, actor, action, target, detail FROM audit"
        params: list[Any] = []
        if target:
            sql += " WHERE target = ?"
            params.append(target)
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        return [
            AuditRecord(at=r[0], actor=r[1], action=r[2], target=r[3], detail=json.loads(r[4]))
            for r in self.db.execute(sql, params).fetchall()
        ]

    # ------------------------------------------------------------ the usage index

    def replace_usage(self, model: str, sites: list[UsageSite]) -> None:
        strangers = sorted({s.model for s in sites} - {model})
        if strangers:
            raise ValueError(f"usage sites of {', '.join(strangers)} given as sites of {model}")
        rows = [
            (
                s.model,
                s.kind.value,
                s.location,
                s.region,
                str(s.version),
                s.deployment_id,
                json.dumps(s.detail),
            )
            for s in sites
        ]
        with self._write():
            self.db.execute("DELETE FROM usage_sites WHERE model = ?", [model])
            self.db.executemany(
                "INSERT INTO usage_sites (model, kind, location, region, version, "
                "deployment_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def usage_index(
        self, model: str | None = None, offset: int = 0, limit: int = 500
    ) -> list[UsageSite]:
        sql = (
            "SELECT model, kind, location, region, version, deployment_id, detail FROM usage_sites"
        )
        params: list[Any] = []
        if model is not None:
            sql += " WHERE model = ?"
            params.append(model)
        sql += " ORDER BY model, id LIMIT ? OFFSET ?"
        params += [limit, offset]
        # `version` is stored as TEXT: validating gives it back as UsageSite's field wants it.
        return [
            UsageSite.model_validate(
                {
                    "model": r[0],
                    "kind": r[1],
                    "location": r[2],
                    "region": r[3],
                    "version": r[4],
                    "deployment_id": r[5],
                    "detail": json.loads(r[6]),
                }
            )
            for r in self.db.execute(sql, params).fetchall()
        ]

    # ------------------------------------------------------------ workers

    def heartbeat(self, worker: str, now: float) -> None:
        with self._write():
            self.db.execute(
                "INSERT INTO workers (name, seen) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET seen = excluded.seen",
                [worker, now],
            )

    def forget_worker(self, worker: str) -> None:
        with self._write():
            self.db.execute("DELETE FROM workers WHERE name = ?", [worker])

    def live_workers(self, now: float, within_s: float) -> list[str]:
        rows = self.db.execute(
            "SELECT name FROM workers WHERE seen >= ?", [now - within_s]
        ).fetchall()
        return [r[0] for r in rows]
