"""The Store port: durable deployments, leases, the command log and the audit history."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.domain import TERMINAL_STATES, AuditRecord, Deployment, DeploymentState, Kind, UsageSite
from core.feed import FeedEntry
from core.spec import DeploymentSpec


class StoreError(Exception):
    """The store failed."""


class Conflict(StoreError):
    """Someone else saved the deployment first: reload and decide again."""


class Busy(StoreError):
    """The endpoint (or model) already has an active deployment."""

    def __init__(self, lock: str, deployment_id: str, requested_by: str) -> None:
        self.lock = lock
        self.deployment_id = deployment_id
        self.requested_by = requested_by
        super().__init__(f"{lock} is busy with {deployment_id} (started by {requested_by})")


def endpoint_lock(endpoint: str) -> str:
    """Held (exclusive) by whatever changes the endpoint: a deployment, a retirement."""
    return f"endpoint:{endpoint}"


def version_lock(model: str, version: str) -> str:
    """Shared by deployments of the version, exclusive for its retirement."""
    return f"version:{model}:{version}"


PAGE_MAX = 1000


class DeploymentQuery(BaseModel):
    """Which deployments to list, and which page of them: every filter given must match.

    Listed active deployments first, then newest first (created_at, then id, descending)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    states: frozenset[DeploymentState] | None = None  # None: any state; empty: none at all
    active_only: bool = False  # with `states`: those of them that are active
    model: str | None = None
    endpoint: str | None = None
    kind: Kind | None = None
    # A case-insensitive substring of the id, model, version or endpoint ("" matches all).
    text: str = ""
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=PAGE_MAX)

    def wanted_states(self) -> frozenset[DeploymentState] | None:
        """The states that may match; None when any may."""
        if not self.active_only:
            return self.states
        active = frozenset(DeploymentState) - TERMINAL_STATES
        return active if self.states is None else self.states & active

    def next_page(self) -> DeploymentQuery:
        return self.model_copy(update={"offset": self.offset + self.limit})


class Store(Protocol):
    # Whether `count` is cheap (SQLite reads an index) or reads every matching entry
    # (DynamoDB): front ends count only a store that counts cheaply.
    counts_cheaply: bool

    def create(
        self, d: Deployment, locks: list[str], audit: AuditRecord, shared: Sequence[str] = ()
    ) -> Deployment:
        """Insert a new deployment holding `locks` exclusively and `shared` in shared mode;
        raises Busy if an active deployment holds one of them in a mode that excludes it.
        Its creation is the deployment's first entry in the change feed."""
        ...

    def get(self, deployment_id: str) -> Deployment | None: ...

    def find(self, prefix: str) -> list[Deployment]:
        """Deployments whose id starts with `prefix` (users type short ids)."""
        ...

    def recent(self, active_only: bool = False, limit: int = 200) -> list[Deployment]:
        """The newest deployments (created_at, then id, descending), any number of them."""
        ...

    def deployments(self, query: DeploymentQuery) -> list[Deployment]:
        """One page of the deployments `query` matches, in its order (see DeploymentQuery)."""
        ...

    def count(self, query: DeploymentQuery) -> int:
        """How many deployments `query` matches, over all pages (its offset and limit ignored)."""
        ...

    def save(
        self, d: Deployment, audit: AuditRecord | None = None, entry: FeedEntry | None = None
    ) -> Deployment:
        """Write `d` if its `rev` is still current (returns it with rev+1); else raise Conflict.

        In the same transaction: locks are released when `d` is terminal, and `entry` (what
        changed, see core.feed.entry_between) is appended to the change feed with the new rev."""
        ...

    def acquire_lease(self, deployment_id: str, owner: str, ttl_s: float, now: float) -> bool:
        """Take or renew the lease on a deployment (or on any name: a feed consumer's cursor);
        False while another owner's lease is unexpired."""
        ...

    def release_lease(self, deployment_id: str, owner: str) -> None: ...

    def runnable(self, now: float) -> list[str]:
        """Ids of active deployments whose pending commands are due (not waiting, not gated)."""
        ...

    def close(self) -> None: ...

    # the change feed and its consumers

    def changes_since(self, cursor: int, limit: int = 500) -> list[FeedEntry]:
        """Feed entries with `seq` > `cursor`, in order (an entry is visible only once every
        entry before it is: seq is given in commit order)."""
        ...

    def last_change(self) -> int:
        """The seq of the newest entry (0 when none): where a new follower starts."""
        ...

    def cursor(self, consumer: str) -> int:
        """How far `consumer` has gone in the feed (0: from the start)."""
        ...

    def set_cursor(self, consumer: str, seq: int) -> None: ...

    def delivery(self, consumer: str, deployment_id: str) -> dict[str, Any] | None:
        """What `consumer` keeps for a deployment (e.g. the Slack channel and ts of its message)."""
        ...

    def set_delivery(self, consumer: str, deployment_id: str, data: dict[str, Any]) -> None: ...

    def command_result(self, key: str) -> dict[str, Any] | None: ...

    def remember(
        self, key: str, deployment_id: str, compute: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """The value kept under `key`; the first call computes and keeps it (if two race, the
        first to write wins and both get its value).
        A command that reads the world before it changes it records what it read here on its
        first run, so a run again after a crash computes the same change."""
        ...

    def record_command(self, key: str, deployment_id: str, result: dict[str, Any], at: str) -> None:
        """Remember a command's result, so a resumed worker feeds it back instead of re-running."""
        ...

    def audit(self, record: AuditRecord) -> None: ...

    def audit_log(
        self, target: str | None = None, limit: int = 500, offset: int = 0
    ) -> list[AuditRecord]:
        """Audit records (of `target`, or all), newest first: `limit` of them after `offset`."""
        ...

    # the usage index: where each model's versions are used (endpoints, code, monitors...)

    def replace_usage(self, model: str, sites: list[UsageSite]) -> None:
        """Make `sites` the whole index of `model`, in one transaction (every site must be of
        `model`: ValueError otherwise)."""
        ...

    def usage_index(
        self, model: str | None = None, offset: int = 0, limit: int = 500
    ) -> list[UsageSite]:
        """Usage sites of `model` (or of all models, by model name), in the order given to
        `replace_usage`: `limit` of them after `offset`."""
        ...

    def next_due(self) -> float | None: ...

    def heartbeat(self, worker: str, now: float) -> None: ...

    def forget_worker(self, worker: str) -> None: ...

    def live_workers(self, now: float, within_s: float) -> list[str]: ...


# ---------------------------------------------------------------- reading records


def load_record(body: str, columns: dict[str, Any]) -> Deployment:
    """A stored deployment, even when its body no longer validates (a value an older release
    let through): such a record comes back with `damaged` saying why, its unreadable deployment
    file values replaced by their defaults (or, when even that fails, rebuilt from the row's
    columns), so that it can be listed, is skipped by workers, and can be aborted."""
    try:
        return Deployment.model_validate_json(body)
    except ValidationError as exc:
        reason = _first_error(exc)
    try:
        raw = json.loads(body)
    except ValueError:
        raw = None
    while isinstance(raw, dict):
        try:
            return Deployment.model_validate(raw).model_copy(update={"damaged": reason})
        except ValidationError as exc:
            locs = [e["loc"] for e in exc.errors()]
            if not all(loc and loc[0] == "spec" for loc in locs):
                break
            if not any([_drop(raw, loc) for loc in locs]):
                break
    return Deployment(
        id=columns["id"],
        kind=Kind(columns["kind"]),
        model=columns["model"],
        version=columns["version"],
        endpoint=columns["endpoint"],
        regions=["local"],
        spec=DeploymentSpec(),
        state=columns["state"],
        requested_by="unknown",
        created_at=columns["created_at"],
        updated_at=columns["updated_at"],
        rev=columns["rev"],
        error="its history could not be read, so what it changed is not known",
        damaged=reason,
    )


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    return f"{loc}: {first['msg']}" if loc else str(first["msg"])


def _drop(raw: dict[str, Any], loc: tuple[int | str, ...]) -> bool:
    """Remove the value at `loc` (skipping parts that are not keys: union tags); True if gone."""
    node: Any = raw
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            continue  # a discriminated union's tag in the path, not a key
    if isinstance(node, dict) and loc[-1] in node:
        del node[loc[-1]]
        return True
    return False
