"""What the steps of every area share: their outcomes, what they run through, the
endpoint facts they record, and the progress of a long step."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.domain import Command, Deployment, EndpointFact, Kind, StepProgress, iso
from core.ports import EndpointConfig, Ports
from core.store import PAGE_MAX, DeploymentQuery, Store
from core.workspace import Workspace


@dataclass(frozen=True)
class Done:
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NotYet:
    until: datetime
    progress: StepProgress | None = None


Outcome = Done | NotYet
Handler = Callable[[Deployment, Command], Outcome]

EndpointEntry = EndpointFact


@dataclass(frozen=True)
class Steps:
    """The handlers of one area, with what they run through; each area subclasses it."""

    ws: Workspace
    ports: Ports
    store: Store
    clock: Callable[[], datetime]

    def _versions(self, d: Deployment) -> list[str]:
        return d.context.versions or [d.version]

    def _deployments_of(self, model: str) -> Iterator[Deployment]:
        """Every deployment of `model`, page by page."""
        query = DeploymentQuery(model=model, kind=Kind.DEPLOY, limit=PAGE_MAX)
        while page := self.store.deployments(query):
            yield from page
            query = query.next_page()

    def _look_again(self) -> datetime:
        return self.clock() + timedelta(seconds=max(0.2, self.ws.settings.worker.poll_s))

    def _started(self, d: Deployment, cmd: Command, now: datetime) -> datetime:
        """When the long step `cmd` was first looked at (`now`, at the first look)."""
        progress = d.context.progress.get(cmd.step)
        return datetime.fromisoformat(progress.started) if progress and progress.started else now


def regions_of(d: Deployment, cmd: Command) -> list[str]:
    """The regions `cmd` acts in: its own, when it is one region's step of several (a wave,
    core.plan), else every region of the deployment."""
    region = cmd.args.get("region")
    return [region] if region else list(d.regions)


def since(started: datetime, of_s: float | None = None) -> StepProgress:
    """A long step's progress: when it started (read back at the next look) and how long it
    lasts; a front end draws the bar from the two, so every look need not be news."""
    return StepProgress(started=iso(started), of_s=of_s)


def load_config(raw: dict[str, Any] | None) -> EndpointConfig | None:
    return EndpointConfig.model_validate(raw) if raw else None


def dump_config(config: EndpointConfig | None) -> dict[str, Any] | None:
    return config.model_dump(mode="json") if config else None


def entry_config(entry: EndpointEntry) -> EndpointConfig | None:
    return load_config(entry.get("config"))


def endpoint_entry(name: str, region: str, config: EndpointConfig | None) -> EndpointEntry:
    return {"name": name, "region": region, "config": dump_config(config)}
