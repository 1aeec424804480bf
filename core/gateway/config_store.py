"""Desired endpoint configs (`serving.db`): written by LocalServing, watched by the gateway.

Each write bumps one workspace-wide revision in the same transaction, so a
reader in another process learns that something changed by reading one row.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path

from pydantic import ValidationError

from core.ports import EndpointConfig, InvalidInput, PortError
from core.sqlite_db import Migrations, open_db, sqlite_errors, write_transaction

SERVING_DB = "serving.db"

# Names become folder names of the capture bucket and metric labels.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

migrations = Migrations("mmm-serving")


@migrations()
def m001_endpoints(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE endpoints (name TEXT NOT NULL, region TEXT NOT NULL, "
        "config TEXT NOT NULL, revision INTEGER NOT NULL, PRIMARY KEY (name, region))"
    )
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    db.execute("INSERT INTO meta (key, value) VALUES ('revision', 0)")


def check_config(config: EndpointConfig) -> None:
    """Refuse a config the gateway could not serve; one line naming the endpoint and the reason."""
    where = f"endpoint {config.name!r} ({config.region})"
    names = [v.name for v in config.variants]
    # The shadow may share a name with a production variant (one provisioned at weight 0).
    shadow = [] if config.shadow is None else [config.shadow.variant.name]
    for name in [config.name, config.region, *names, *shadow]:
        if not _SAFE_NAME.match(name):
            raise InvalidInput(f"{where}: {name!r} is not a valid name (letters, digits, . _ -)")
    if not config.variants:
        raise InvalidInput(f"{where}: needs at least one production variant")
    if len(set(names)) != len(names):
        raise InvalidInput(f"{where}: production variant names must be unique, got {names}")
    if sum(v.weight for v in config.variants) <= 0:
        raise InvalidInput(f"{where}: the production variants' weights add up to 0")
    if config.invocation_timeout_ms <= 0:
        raise InvalidInput(f"{where}: invocation_timeout_ms must be positive")


class EndpointTable:
    """The `endpoints` table of `<home>/serving.db`; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_db(path, migrations)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def revision(self) -> int:
        """A number that changes on every write; cheap enough to read on each request."""
        with self._lock, self._errors():
            row = self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(row[0])

    def get(self, name: str, region: str) -> EndpointConfig | None:
        with self._lock, self._errors():
            row = self._db.execute(
                "SELECT config FROM endpoints WHERE name = ? AND region = ?", (name, region)
            ).fetchone()
        return None if row is None else self._parse(row[0], name, region)

    def all(self) -> list[EndpointConfig]:
        return self.snapshot()[1]

    def snapshot(self) -> tuple[int, list[EndpointConfig]]:
        """The revision and every region's configs, read in one transaction (consistent)."""
        with self._lock, self._errors():
            conn = self._db
            conn.execute("BEGIN")
            try:
                rev = conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
                rows = conn.execute(
                    "SELECT config, name, region FROM endpoints ORDER BY name, region"
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        return int(rev[0]), [self._parse(doc, name, reg) for doc, name, reg in rows]

    def apply(self, config: EndpointConfig) -> EndpointConfig | None:
        """Store `config`; returns the previous one. The same config again changes nothing."""
        check_config(config)
        doc = config.model_dump_json()
        with self._lock, self._errors(), write_transaction(self._db) as db:
            row = db.execute(
                "SELECT config FROM endpoints WHERE name = ? AND region = ?",
                (config.name, config.region),
            ).fetchone()
            previous = None if row is None else self._parse(row[0], config.name, config.region)
            if previous == config:
                return previous
            revision = self._bump(db)
            db.execute(
                "INSERT INTO endpoints (name, region, config, revision) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name, region) DO UPDATE SET config = excluded.config, "
                "revision = excluded.revision",
                (config.name, config.region, doc, revision),
            )
        return previous

    def delete(self, name: str, region: str) -> bool:
        with self._lock, self._errors(), write_transaction(self._db) as db:
            gone = db.execute(
                "DELETE FROM endpoints WHERE name = ? AND region = ?", (name, region)
            ).rowcount
            if gone:
                self._bump(db)
        return bool(gone)

    @staticmethod
    def _bump(db: sqlite3.Connection) -> int:
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'revision'")
        row = db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(row[0])

    def _parse(self, doc: str, name: str, region: str) -> EndpointConfig:
        try:
            return EndpointConfig.model_validate_json(doc)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise PortError(
                f"{self.path}: endpoint {name!r} ({region}) holds an unreadable config: "
                f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
            ) from None

    def _errors(self) -> AbstractContextManager[None]:
        return sqlite_errors(self.path)
