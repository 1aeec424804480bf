"""What every part of the service shares: the workspace, the store, the ports, the actor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.domain import AuditRecord, iso, utcnow
from core.names import InvalidName, check_actor
from core.ports import Ports
from core.service.errors import BadRequest
from core.store import Store
from core.workspace import Workspace


class ServiceBase:
    def __init__(
        self,
        ws: Workspace,
        store: Store,
        ports: Ports,
        actor: str,
        clock: Any = utcnow,
        audit_detail: Mapping[str, str] | None = None,
    ) -> None:
        """`audit_detail`: added to every audit record this service writes (e.g. the chat
        user id a front end vouches for, beside the mmm identity)."""
        self.ws = ws
        self.store = store
        self.ports = ports
        try:
            self.actor = check_actor(actor)
        except InvalidName as exc:
            raise BadRequest(str(exc)) from None
        self.clock = clock
        self.policy = ws.settings.policy
        self.audit_detail = dict(audit_detail or {})

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def _audit(self, action: str, target: str, **detail: Any) -> AuditRecord:
        return AuditRecord(
            at=iso(self.clock()),
            actor=self.actor,
            action=action,
            target=target,
            detail={**detail, **self.audit_detail},
        )
