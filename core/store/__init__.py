"""The Store port: durable deployments, leases, the command log and the audit history."""

from __future__ import annotations

from typing import Any, Protocol

from core.domain import AuditRecord, Deployment


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


class Store(Protocol):
    def create(self, d: Deployment, locks: list[str], audit: AuditRecord) -> Deployment:
        """Insert a new deployment holding `locks`; raises Busy if one is held by an active one."""
        ...

    def get(self, deployment_id: str) -> Deployment | None: ...

    def find(self, prefix: str) -> list[Deployment]:
        """Deployments whose id starts with `prefix` (users type short ids)."""
        ...

    def recent(self, active_only: bool = False, limit: int = 200) -> list[Deployment]: ...

    def save(self, d: Deployment, audit: AuditRecord | None = None) -> Deployment:
        """Write `d` if its `rev` is still current (returns it with rev+1); else raise Conflict.

        Locks are released in the same transaction when `d` is terminal."""
        ...

    def acquire_lease(self, deployment_id: str, owner: str, ttl_s: float, now: float) -> bool:
        """Take or renew the lease; False while another owner's lease is unexpired."""
        ...

    def release_lease(self, deployment_id: str, owner: str) -> None: ...

    def runnable(self, now: float) -> list[str]:
        """Ids of active deployments whose pending commands are due (not waiting, not gated)."""
        ...

    def close(self) -> None: ...

    def command_result(self, key: str) -> dict[str, Any] | None: ...

    def record_command(self, key: str, deployment_id: str, result: dict[str, Any], at: str) -> None:
        """Remember a command's result, so a resumed worker feeds it back instead of re-running."""
        ...

    def audit(self, record: AuditRecord) -> None: ...

    def audit_log(self, target: str | None = None, limit: int = 500) -> list[AuditRecord]: ...

    def next_due(self) -> float | None: ...

    def heartbeat(self, worker: str, now: float) -> None: ...

    def forget_worker(self, worker: str) -> None: ...

    def live_workers(self, now: float, within_s: float) -> list[str]: ...
