"""The embedded Monitor port: alarm rules on the gateway's per-second aggregates.

Rules live beside the aggregates in `<home>/metrics.db`; `evaluate` sums the
variant's production traffic since `since` and compares it with each rule.
Below `min_requests` there is no verdict: the alarm does not fire.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.gateway.aggregates import METRICS_DB, PRODUCTION, Window, read_window
from core.gateway.aggregates import migrations as metrics_migrations
from core.layout import alarm_name
from core.ports import AlarmRef, AlarmState, NotFound, VariantFigures
from core.spec import Alarms
from core.sqlite_db import Migrations, open_db, sqlite_errors, write_transaction

DEFAULT_WINDOW_S = 300.0
ERROR_RATE = "error_rate"
P99_LATENCY = "p99_latency_ms"

migrations = Migrations("mmm-monitor")


@migrations()
def m001_alarms(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE alarms (name TEXT NOT NULL, region TEXT NOT NULL, endpoint TEXT NOT NULL, "
        "variant TEXT NOT NULL, metric TEXT NOT NULL, threshold REAL NOT NULL, "
        "min_requests INTEGER NOT NULL, PRIMARY KEY (name, region))"
    )


def measure(metric: str, window: Window) -> float:
    if metric == ERROR_RATE:
        return window.error_rate
    return window.p99_ms or 0.0  # no call timed: none too slow


class LocalMonitor:
    def __init__(
        self,
        home: Path,
        clock: Callable[[], float] = time.time,
        default_window_s: float = DEFAULT_WINDOW_S,
    ) -> None:
        self.path = home / METRICS_DB
        self._clock = clock
        self._default_window_s = default_window_s
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def db(self) -> sqlite3.Connection:
        # Opened on first use: building the adapter touches no file.
        if self._db is None:
            self._db = open_db(self.path, metrics_migrations, migrations)
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def ensure_alarms(self, endpoint: str, region: str, variant: str, alarms: Alarms) -> list[str]:
        rules = [(ERROR_RATE, alarms.error_rate), (P99_LATENCY, alarms.p99_latency_ms)]
        names = [alarm_name(endpoint, variant, metric) for metric, _ in rules]
        with self._lock, sqlite_errors(self.path), write_transaction(self.db) as db:
            for name, (metric, threshold) in zip(names, rules, strict=True):
                db.execute(
                    "INSERT INTO alarms (name, region, endpoint, variant, metric, threshold, "
                    "min_requests) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, region) DO "
                    "UPDATE SET endpoint = excluded.endpoint, variant = excluded.variant, "
                    "metric = excluded.metric, threshold = excluded.threshold, "
                    "min_requests = excluded.min_requests",
                    (name, region, endpoint, variant, metric, threshold, alarms.min_requests),
                )
        return names

    def delete_alarms(self, names: list[str], region: str) -> None:
        with self._lock, sqlite_errors(self.path), write_transaction(self.db) as db:
            db.executemany(
                "DELETE FROM alarms WHERE name = ? AND region = ?", [(n, region) for n in names]
            )

    def evaluate(
        self, names: list[str], region: str, since: float | None = None
    ) -> list[AlarmState]:
        start = self._clock() - self._default_window_s if since is None else since
        states = []
        with self._lock, sqlite_errors(self.path):
            windows: dict[tuple[str, str], Window] = {}
            for name in names:
                row = self.db.execute(
                    "SELECT endpoint, variant, metric, threshold, min_requests FROM alarms "
                    "WHERE name = ? AND region = ?",
                    (name, region),
                ).fetchone()
                if row is None:
                    raise NotFound(f"{self.path}: no alarm {name!r} in region {region}")
                endpoint, variant, metric, threshold, min_requests = row
                key = (endpoint, variant)
                if key not in windows:
                    windows[key] = read_window(
                        self.db, region, endpoint, variant, PRODUCTION, start
                    )
                window = windows[key]
                value = measure(metric, window)
                firing = window.requests >= min_requests and value > threshold
                states.append(
                    AlarmState(
                        name=name, metric=metric, value=value, threshold=threshold, firing=firing
                    )
                )
        return states

    def alarms(self, prefix: str = "") -> list[AlarmRef]:
        with self._lock, sqlite_errors(self.path):
            rows = self.db.execute(
                "SELECT DISTINCT region, name FROM alarms WHERE substr(name, 1, ?) = ? "
                "ORDER BY region, name",
                (len(prefix), prefix),
            ).fetchall()
        return [AlarmRef(region, name) for region, name in rows]

    def figures(
        self, endpoint: str, region: str, variant: str, role: str, window_s: float = 60.0
    ) -> VariantFigures:
        now = self._clock()
        with self._lock, sqlite_errors(self.path):
            # Whole seconds, the current one included: it is still filling, so the rate
            # counts it as part of the window rather than as a second of its own.
            window = read_window(self.db, region, endpoint, variant, role, now - window_s)
        return VariantFigures.counted(
            endpoint, region, variant, role, window_s, window.requests, window.errors,
            window.p99_ms,
        )  # fmt: skip
