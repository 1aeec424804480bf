"""What `rollback` goes back to, read from the deployments' records (no I/O here)."""

from __future__ import annotations

from core.domain import Deployment
from core.plan import Action
from core.ports import EndpointConfig, Variant


def served_before(d: Deployment) -> dict[str, EndpointConfig | None] | None:
    """Per region, `d`'s endpoint as it was before `d` changed it (None: it did not exist),
    read from the undo of `d`'s first step that changed endpoints; None when no step did."""
    for entry in d.journal:
        undo = entry.undo
        if undo is None or undo.action != Action.RESTORE_ENDPOINTS.value:
            continue
        return {
            change["region"]: EndpointConfig.model_validate(change["read"])
            if change["read"]
            else None
            for change in undo.args["changes"]
            if change["name"] == d.endpoint
        }
    return None


def main_variant(config: EndpointConfig | None) -> Variant | None:
    """The variant that takes the most live traffic (the first of equals); None: none does."""
    live = [v for v in config.variants if v.weight > 0] if config else []
    return max(live, key=lambda v: v.weight, default=None)
