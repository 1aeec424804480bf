"""Workers and stores: deployments advanced per second by 1, 2 and 4 worker processes on
SQLite and on DynamoDB (moto's server over HTTP, in this process), and the dashboard's
first page with 50,000 deployments on each store.

Throughput: for each store and number of workers, a fresh workspace with DEPLOYMENTS
all-at-once deployments (each of its own version to its own endpoint, on the recording
fakes of tests/support, so the systems cost nothing), then that many `worker` processes
started at once; the figure is deployments / seconds until every one has ended.

First page: 50,000 deployments (tests/support/bulk.py) in each store, then the median of
ROUNDS reads of `deployments(DeploymentQuery())` (what the dashboard shows first: 50
deployments, active first, newest first) and of its count (on moto: MOTO_ROUNDS reads of
the page, and MOTO_COUNTS of the count, which takes tens of seconds there).

moto answers in Python what DynamoDB answers in its own service: DynamoDB's figures here
are moto's, not AWS's, and say only that the store's work stays within pages and keys.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.table import Ratio
from core.bootstrap import build_store, load_workspace
from core.domain import DeploymentState, Library
from core.service import Service
from core.store import DeploymentQuery, Store
from core.store.dynamodb import DynamoStore
from core.store.sqlite import SqliteStore
from tests.support.bulk import bulk_insert, drafts
from tests.support.models import train_sklearn_regressor, write_golden
from tests.support.moto_server import DUMMY_ENV, REGION, reset, server_url
from tests.support.worker_process import fake_ports, spawn

DEPLOYMENTS = 20
WORKERS = (1, 2, 4)
MANY = 50_000
ROUNDS = 5
MOTO_ROUNDS = 2
MOTO_COUNTS = 1  # a count on moto over 50,000 items takes tens of seconds


def _settings(store: str, table: str) -> dict[str, Any]:
    settings: dict[str, Any] = {"worker": {"lease_s": 5, "poll_s": 0.05, "backoff_s": 0}}
    if store == "dynamodb":
        settings["backends"] = {"store": "dynamodb"}
        settings["aws"] = {"region": REGION, "endpoint_url": server_url(), "table": table}
    return settings


def throughput(store: str, workers: int, models: Path) -> float:
    """Deployments per second of `workers` processes on a fresh `store`."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "ws"
        home.mkdir()
        table = f"bench-{store}-{workers}"
        (home / "mmm.yaml").write_text(yaml.safe_dump(_settings(store, table)))
        ws = load_workspace(home)
        svc = Service(ws, build_store(ws), fake_ports(home), "bench")
        artifact, golden = models / "model.joblib", models / "golden.jsonl"
        for n in range(DEPLOYMENTS):
            svc.ports.registry.register("m", artifact, Library.SKLEARN, golden, None, "bench")
            svc.deploy("m", str(n + 1), f"ep-{n:03d}")
        started = time.perf_counter()
        running = [spawn(home, env={**os.environ, **DUMMY_ENV}) for _ in range(workers)]
        for process in running:
            out, _ = process.communicate(timeout=3600)
            if process.returncode != 0:
                raise SystemExit(f"a worker failed:\n{out}")
        elapsed = time.perf_counter() - started
        ended = svc.store.deployments(DeploymentQuery(limit=1000))
        assert all(d.state is DeploymentState.SUCCEEDED for d in ended), "not all succeeded"
        svc.store.close()
        return DEPLOYMENTS / elapsed


def first_page(store: Store, rounds: int, counts: int, warm_up: bool) -> tuple[float, float]:
    """Median seconds of the dashboard's first page (`rounds` reads) and of its count
    (in the first `counts` of those rounds)."""
    if warm_up:
        store.deployments(DeploymentQuery())
    pages, counted = [], []
    for n in range(rounds):
        started = time.perf_counter()
        store.deployments(DeploymentQuery())
        pages.append(time.perf_counter() - started)
        if n < counts:
            started = time.perf_counter()
            store.count(DeploymentQuery(active_only=True))
            counted.append(time.perf_counter() - started)
    return statistics.median(pages), statistics.median(counted)


def main() -> list[Ratio]:
    os.environ.update(DUMMY_ENV)
    server_url()
    reset()
    ratios: list[Ratio] = []
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        artifact = train_sklearn_regressor(models)
        artifact.rename(models / "model.joblib")
        write_golden(models / "model.joblib", Library.SKLEARN, models).rename(
            models / "golden.jsonl"
        )
        print(f"workers: {DEPLOYMENTS} all-at-once deployments per run, on recording fakes")
        for store in ("sqlite", "dynamodb"):
            base = None
            for workers in WORKERS:
                rate = throughput(store, workers, models)
                base = base or rate
                print(
                    f"  {store:8s} {workers} worker(s)  {rate:6.2f} deployments/s"
                    f"   x{rate / base:.2f} of one worker"
                )
                if workers != WORKERS[0]:
                    label = "SQLite" if store == "sqlite" else "DynamoDB (moto)"
                    ratios.append(
                        Ratio(
                            f"deployments/s, {label}: {workers} workers / {WORKERS[0]}",
                            rate,
                            base,
                            "/s",
                        )
                    )
    print(
        f"first page of {MANY:,} deployments (median of {ROUNDS}; on moto {MOTO_ROUNDS} pages, "
        f"{MOTO_COUNTS} count)"
    )
    written = drafts(MANY)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStore(Path(tmp) / "state.db")
        bulk_insert(sqlite, written)
        from core.adapters.aws.session import AwsClients

        dynamo = DynamoStore(AwsClients(REGION, server_url()), "bench-first-page")
        started = time.perf_counter()
        bulk_insert(dynamo, written)
        print(f"  (DynamoDB on moto filled in {time.perf_counter() - started:.0f} s)")
        stores: tuple[tuple[str, Store, int, int, bool], ...] = (
            ("sqlite", sqlite, ROUNDS, ROUNDS, True),
            ("dynamodb", dynamo, MOTO_ROUNDS, MOTO_COUNTS, False),  # moto keeps no cache
        )
        for name, filled, rounds, counts, warm_up in stores:
            page, count = first_page(filled, rounds, counts, warm_up)
            print(
                f"  {name:8s} page of 50 {page * 1000:8.1f} ms   count of active {count * 1000:8.1f} ms"
            )
        sqlite.close()
    return ratios
