"""Store queries at 50,000 deployments: a page and a count against loading every record.

50,000 deployments (tests/support/bulk.py: drafted as the service drafts them,
written with the store's own rows) in a SQLite store on a temporary file. In
alternating rounds, so drift of the machine hits all alike:

- a page: `deployments(DeploymentQuery(...))` of 50 (unfiltered; and filtered by model);
- a count: `count(DeploymentQuery(...))` of the same filters;
- everything: `recent(limit=50_000)`, what a list had to do before there were pages.

Reported: the median of each, and the ratio of everything to a page and to a count.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.store import DeploymentQuery
from core.store.sqlite import SqliteStore
from tests.support.bulk import bulk_insert, drafts

N = 50_000
ROUNDS = 3
FAST_REPEAT = 20  # a page or a count is timed this many times a round (their median)


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        store = SqliteStore(Path(tmp) / "state.db")
        bulk_insert(store, drafts(N))
        print(
            f"store benchmark: {N:,} deployments, filled in {time.perf_counter() - started:.1f} s"
        )
        everything = DeploymentQuery()
        churn = DeploymentQuery(model="churn")
        cases: dict[str, Callable[[], Any]] = {
            "page of 50": lambda: store.deployments(everything),
            "page of 50, model=churn": lambda: store.deployments(churn),
            "page of 50 at offset 40,000": lambda: store.deployments(
                everything.model_copy(update={"offset": 40_000})
            ),
            "count": lambda: store.count(everything),
            "count, model=churn": lambda: store.count(churn),
            "count, text='ep-1'": lambda: store.count(DeploymentQuery(text="ep-1")),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        loads: list[float] = []
        for fn in cases.values():
            fn()  # warm up
        for _ in range(ROUNDS):
            for name, fn in cases.items():
                times[name].append(statistics.median(timed(fn) for _ in range(FAST_REPEAT)))
            loads.append(timed(lambda: store.recent(limit=N)))
        store.close()
    t_all = statistics.median(loads)
    print(f"  recent(limit={N:,}) (every record)  median {t_all * 1000:10.1f} ms")
    for name in cases:
        t = statistics.median(times[name])
        print(f"  {name:34s} median {t * 1000:10.2f} ms   every record / this  x{t_all / t:,.0f}")
