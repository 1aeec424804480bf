"""The change feed: every change of every deployment, in order, for whoever follows it.

The store appends one entry per saved change, in the transaction that saves
it, numbered by a sequence that only grows (`Store.changes_since(cursor)`).
Front ends follow it to learn what changed without polling every deployment;
`core.notify` follows it for the notifier, with a durable cursor of its own.

Progress of long steps (a bake, a collection) is an entry here, never an event
in the deployment's history, so a record stays bounded however long it waits.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.domain import Deployment, DeploymentState, Stage
from core.events import DeploymentEvent


class FeedEntry(BaseModel):
    """One change of one deployment: what it is now, and what happened since the last entry."""

    model_config = ConfigDict(frozen=True)

    seq: int = 0  # given by the store when it appends the entry
    deployment_id: str
    rev: int  # the deployment's revision this change made
    at: str
    state: DeploymentState
    stage: Stage
    events: list[DeploymentEvent] = Field(default_factory=list)  # new in the history, in order
    # A long step's progress when this change is a look at it (e.g. {"collect": {"samples": 120,
    # "target": 500}}): the step's name and what the step reports.
    progress: dict[str, dict[str, Any]] | None = None


def entry_between(before: Deployment | None, after: Deployment) -> FeedEntry | None:
    """What changed from `before` (None: just created) to `after`; None when nothing a person
    would see changed (a look at a long step that learnt nothing new)."""
    events = after.events[len(before.events) :] if before is not None else list(after.events)
    progress = _progress(after)
    if before is not None and not events and progress == _progress(before):
        return None
    return FeedEntry(
        deployment_id=after.id,
        rev=after.rev,
        at=after.updated_at,
        state=after.state,
        stage=after.stage,
        events=list(events),
        progress=progress if not events else None,
    )


def _progress(d: Deployment) -> dict[str, dict[str, Any]] | None:
    """The progress of the step `d` waits on, if it reports any."""
    if not d.pending or not d.wake_at:
        return None
    step = d.pending[0].key.split("/", 2)[-1]
    progress = d.context.progress.get(step)
    shown = progress.model_dump(mode="json") if progress else {}
    return {step: shown} if shown else None
