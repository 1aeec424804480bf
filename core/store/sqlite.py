"""The Store on SQLite (sqlite-utils, WAL): one file in the workspace, shared by processes.

Every write that must not half-happen runs in one `BEGIN IMMEDIATE`
transaction, so a crash leaves either the old or the new state. Saves carry
the revision they were read at; a stale revision raises Conflict, so two
writers never both win.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from core.domain import AuditRecord, Deployment
from core.feed import FeedEntry, entry_between
from core.sqlite_db import open_db, write_transaction
from core.store import Busy, Conflict, load_record

# Columns kept beside the JSON body: enough to list and end a record whose body cannot be read.
_COLUMNS = (
    "id",
    "kind",
    "model",
    "version",
    "endpoint",
    "state",
    "rev",
    "created_at",
    "updated_at",
)

migrations = Migrations("mmm-state")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE deployments (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, model TEXT NOT NULL, version INTEGER NOT NULL,
            endpoint TEXT NOT NULL, state TEXT NOT NULL, active INTEGER NOT NULL,
            due REAL, rev INTEGER NOT NULL, body TEXT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"""
    )
    db.execute("CREATE INDEX deployments_active ON deployments(active, due)")
    db.execute(
        "CREATE TABLE locks (name TEXT PRIMARY KEY, deployment_id TEXT NOT NULL, by TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE leases (deployment_id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
        "expires REAL NOT NULL)"
    )
    db.execute(
        "CREATE TABLE commands (key TEXT PRIMARY KEY, deployment_id TEXT NOT NULL, "
        "result TEXT NOT NULL, at TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, "
        "actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX audit_target ON audit(target)")
    db.execute("CREATE TABLE workers (name TEXT PRIMARY KEY, seen REAL NOT NULL)")


@migrations()
def m002_shared_locks(db: sqlite_utils.Database) -> None:
    # A lock is held by several deployments at once in shared mode (two deployments of one
    # version), by one in exclusive mode (a deployment of an endpoint, a retirement).
    db.execute(
        "CREATE TABLE locks_v2 (name TEXT NOT NULL, deployment_id TEXT NOT NULL, "
        "by TEXT NOT NULL, shared INTEGER NOT NULL, PRIMARY KEY (name, deployment_id))"
    )
    db.execute("INSERT INTO locks_v2 SELECT name, deployment_id, by, 0 FROM locks")
    db.execute("DROP TABLE locks")
    db.execute("ALTER TABLE locks_v2 RENAME TO locks")
    db.execute("CREATE INDEX locks_deployment ON locks(deployment_id)")


@migrations()
def m003_intents(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE intents (key TEXT PRIMARY KEY, deployment_id TEXT NOT NULL, "
        "body TEXT NOT NULL)"
    )


@migrations()
def m004_feed(db: sqlite_utils.Database) -> None:
    # AUTOINCREMENT: a seq is never reused, even after the newest entries are pruned.
    db.execute(
        "CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "deployment_id TEXT NOT NULL, body TEXT NOT NULL)"
    )
    db.execute("CREATE TABLE cursors (consumer TEXT PRIMARY KEY, seq INTEGER NOT NULL)")
    db.execute(
        "CREATE TABLE deliveries (consumer TEXT NOT NULL, deployment_id TEXT NOT NULL, "
        "body TEXT NOT NULL, PRIMARY KEY (consumer, deployment_id))"
    )


class SqliteStore:
    """One connection per thread (SQLite serialises writers across connections)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite_utils.Database] = []
        self._lock = threading.Lock()
        self.db  # noqa: B018  (opens the file and brings its schema up to date)

    @property
    def db(self) -> sqlite_utils.Database:
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is None:
            db = open_db(self.path, migrations)
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[None]:
        with write_transaction(self.db):
            yield

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    # ------------------------------------------------------------ deployments

    def _row(self, d: Deployment) -> dict[str, Any]:
        return {
            "id": d.id,
            "kind": d.kind.value,
            "model": d.model,
            "version": d.version,
            "endpoint": d.endpoint,
            "state": d.state.value,
            "active": int(d.active),
            "due": d.due_at,  # when it is due is the domain's rule: the column indexes it
            "rev": d.rev,
            "body": d.model_dump_json(),
            "created_at": d.created_at,
            "updated_at": d.updated_at,
        }

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
            row = self._row(d)
            self.db.execute(
                f"INSERT INTO deployments ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
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
        row = self._row(new)
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
        return [load_record(r[0], dict(zip(_COLUMNS, r[1:], strict=True))) for r in rows]

    def _select(self, where: str, params: list[Any]) -> list[Deployment]:
        columns = ", ".join(_COLUMNS)
        sql = f"SELECT body, {columns} FROM deployments {where}"
        return self._load(self.db.execute(sql, params).fetchall())

    def get(self, deployment_id: str) -> Deployment | None:
        found = self._select("WHERE id = ?", [deployment_id])
        return found[0] if found else None

    def find(self, prefix: str) -> list[Deployment]:
        return self._select("WHERE id >= ? AND id < ? ORDER BY id", [prefix, prefix + "\uffff"])

    def recent(self, active_only: bool = False, limit: int = 200) -> list[Deployment]:
        where = "WHERE active = 1" if active_only else ""
        return self._select(f"{where} ORDER BY created_at DESC, id DESC LIMIT ?", [limit])

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

    def audit_log(self, target: str | None = None, limit: int = 500) -> list[AuditRecord]:
        sql = "SELECT at, actor, action, target, detail FROM audit"
        params: list[Any] = []
        if target:
            sql += " WHERE target = ?"
            params.append(target)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [
            AuditRecord(at=r[0], actor=r[1], action=r[2], target=r[3], detail=json.loads(r[4]))
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
