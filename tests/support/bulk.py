"""Many deployments at once: drafted as the service drafts them, written as the store writes them.

`drafts(n)` makes `n` deployments shaped like `Service._draft`'s (core/service.py),
with a fixed mix of models, versions, endpoints, kinds and states drawn from a
seeded generator: the same `n` and `seed`, the same deployments. Ids look like
the service's (`dep-YYMMDD-xxxxxx`, `ret-...` for retirements) and never repeat;
creation times go up by a few seconds from `start`, every fourth one sharing the
time of the one before (so ties are ordered by id).

`bulk_insert(store, deployments)` writes them in one transaction with the
store's own row builder and INSERT (`core.store.sqlite_rows.insert_deployments`, what
`SqliteStore.create` runs), each at revision 1 as `create` leaves it. Only the
`deployments` rows are written: no locks, audit records or feed entries.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from core.domain import Deployment, DeploymentState, Kind, iso
from core.events import Created
from core.spec import DeploymentSpec, parse_deployment
from core.sqlite_db import write_transaction
from core.store.dynamodb import DynamoStore
from core.store.sqlite import SqliteStore
from core.store.sqlite_rows import insert_deployments

# Mixed case and '_' on purpose: the text match ignores case and takes '_' literally.
MODELS = (
    "churn",
    "fraud",
    "ltv",
    "Pricing_EU",
    "pricingzeu",
    "ranker",
    "RankerV2",
    "search_ctr",
    "eta",
    "demand",
    "credit",
    "spam",
)
ENDPOINTS = (*(f"ep-{k:02d}" for k in range(40)), "churn-live", "fraud-live", "ltv")
STATE_WEIGHTS = {
    DeploymentState.SUCCEEDED: 60,
    DeploymentState.FAILED: 12,
    DeploymentState.ABORTED: 6,
    DeploymentState.ROLLED_BACK: 7,
    DeploymentState.QUEUED: 5,
    DeploymentState.RUNNING: 6,
    DeploymentState.WAITING_APPROVAL: 4,
}
START = datetime(2025, 1, 1, tzinfo=UTC)


def drafts(n: int, seed: int = 0, start: datetime = START) -> list[Deployment]:
    rng = random.Random(seed)
    specs: dict[str, DeploymentSpec] = {}
    states = list(STATE_WEIGHTS)
    weights = list(STATE_WEIGHTS.values())
    suffixes = rng.sample(range(16**6), n)  # distinct: no two ids alike
    out = []
    at = start
    for i in range(n):
        if i % 4 != 3:
            at += timedelta(seconds=rng.randint(1, 90), milliseconds=rng.randint(0, 999))
        kind = Kind.RETIRE if rng.random() < 0.06 else Kind.DEPLOY
        model = rng.choice(MODELS)
        endpoint = rng.choice(ENDPOINTS)
        spec = specs.get(endpoint) or specs.setdefault(
            endpoint, parse_deployment({"endpoint": endpoint})
        )
        actor = rng.choice(("alice", "bob", "carol"))
        now = iso(at)
        prefix = "ret" if kind is Kind.RETIRE else "dep"
        d = Deployment(  # as Service._draft makes it
            id=f"{prefix}-{at:%y%m%d}-{suffixes[i]:06x}",
            kind=kind,
            model=model,
            version=rng.randint(1, 30),
            endpoint=endpoint,
            regions=list(spec.regions),
            spec=spec,
            requested_by=actor,
            created_at=now,
            updated_at=now,
            events=[Created(at=now, by=actor)],
        )
        state = rng.choices(states, weights)[0]
        if state is not DeploymentState.QUEUED:
            d = d.model_copy(update={"state": state})
        out.append(d)
    return out


def bulk_insert(store: SqliteStore | DynamoStore, deployments: Iterable[Deployment]) -> None:
    created = (d.model_copy(update={"rev": 1}) for d in deployments)
    if isinstance(store, DynamoStore):
        store.insert_deployments(created)
        return
    with write_transaction(store.db):
        insert_deployments(store.db, created)
