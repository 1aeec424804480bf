"""The one API of the front ends (CLI, dashboard, Slack bot).

`Service` is built up in layers, each a module: `base` (workspace, store, ports, actor),
`queries` (what the front ends read; changes nothing), `running` (running deployments here
or leaving them to a live worker: `run`, `wait`, `submit`) and `commands` (what changes
state: register, deploy, approve, abort, retire, rollback). Who may do what is decided in
core.policy; the refusals are in `errors`.
"""

from __future__ import annotations

from core.service.commands import Commands, new_id
from core.service.errors import BadRequest, PermissionDenied, ServiceError, WaitTimeout

__all__ = ["BadRequest", "PermissionDenied", "Service", "ServiceError", "WaitTimeout", "new_id"]


class Service(Commands):
    """The commands, queries and runs of one actor on one workspace (built by
    core.bootstrap). Every refusal is a ServiceError with one line for the user."""
