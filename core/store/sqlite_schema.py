"""The SQLite store's schema: its migrations, applied once per process (core.sqlite_db)."""

from __future__ import annotations

import sqlite3

from core.sqlite_db import Migrations

migrations = Migrations("mmm-state")


@migrations()
def m001_initial(db: sqlite3.Connection) -> None:
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
def m002_shared_locks(db: sqlite3.Connection) -> None:
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
def m003_intents(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE intents (key TEXT PRIMARY KEY, deployment_id TEXT NOT NULL, "
        "body TEXT NOT NULL)"
    )


@migrations()
def m004_feed(db: sqlite3.Connection) -> None:
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


@migrations()
def m005_listing(db: sqlite3.Connection) -> None:
    # Pages of deployments (DeploymentQuery) in their order: active first, then newest first.
    # The listing index covers every column a filter reads, so a filter without an index of
    # its own (the text match) reads this index, never the records with their bodies.
    db.execute(
        "CREATE INDEX deployments_listing ON deployments"
        "(active, created_at, id, state, kind, model, endpoint, version)"
    )
    # One per equality filter, each in the listing order: a filtered page is a range of it.
    for column in ("state", "model", "endpoint", "kind"):
        db.execute(
            f"CREATE INDEX deployments_by_{column} ON deployments({column}, active, created_at, id)"
        )


@migrations()
def m006_usage_index(db: sqlite3.Connection) -> None:
    # Where each model's versions are used. `version` is TEXT: the domain's type may change.
    db.execute(
        "CREATE TABLE usage_sites (id INTEGER PRIMARY KEY, model TEXT NOT NULL, "
        "kind TEXT NOT NULL, location TEXT NOT NULL, region TEXT, version TEXT NOT NULL, "
        "deployment_id TEXT, detail TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX usage_sites_model ON usage_sites(model)")
