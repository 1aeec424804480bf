"""What an abort or a retirement would change, before anyone clicks it.

An abort undoes the journal newest first (core.machine), each undo command
computed when its step succeeded. The preview replays the same undo
commands on paper: the endpoint ones with the same function the worker
applies (`core.traffic.revert`, on the configuration live now), the others
as one line each. A forward command still in flight is undone too once its
result arrives; the preview names it, since what it changed is not known yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.domain import Command, Deployment, Phase, UsageSite
from core.plan import Action
from core.ports import EndpointConfig
from core.traffic import revert

LiveConfig = Callable[[str, str], EndpointConfig | None]  # (name, region) -> config now


class EndpointOutcome(BaseModel):
    """One endpoint, now and after the undo: variant name -> percent of live traffic."""

    model_config = ConfigDict(frozen=True)

    name: str
    region: str
    now: dict[str, float] | None  # None: the endpoint does not exist
    after: dict[str, float] | None  # None: the undo deletes it
    shadow_now: str | None = None
    shadow_after: str | None = None


class AbortPreview(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment_id: str
    undo: list[str] = Field(default_factory=list)  # what each undo step does, in order
    endpoints: list[EndpointOutcome] = Field(default_factory=list)
    in_flight: str | None = None  # a forward step whose result will be undone on arrival
    possible: bool = True
    reason: str | None = None  # why abort is refused, when it is


class RetirePreview(BaseModel):
    model_config = ConfigDict(frozen=True)

    sites: list[UsageSite]  # every usage site the retirement would remove
    refused: str | None = None  # why it would be refused now (live traffic), if it would


def preview_abort(d: Deployment, live: LiveConfig) -> AbortPreview:
    """What `mmm abort` would do to `d` now (without doing any of it)."""
    if not d.active:
        return AbortPreview(deployment_id=d.id, possible=False, reason=f"it has ended ({d.state})")
    if d.phase is Phase.COMPENSATING:
        return AbortPreview(deployment_id=d.id, possible=False, reason="it is already being undone")
    undos = [e.undo for e in reversed(d.journal) if e.undo is not None and not e.undone]
    configs: dict[tuple[str, str], EndpointConfig | None] = {}
    for cmd in undos:
        if Action(cmd.action) is Action.RESTORE_ENDPOINTS:
            for change in cmd.args["changes"]:
                key = (change["name"], change["region"])
                if key not in configs:
                    configs[key] = live(*key)
                configs[key] = revert(configs[key], _load(change["read"]), _load(change["wrote"]))
    endpoints = [
        _outcome(name, region, live(name, region), after)
        for (name, region), after in configs.items()
    ]
    in_flight = next((c for c in d.pending if not _only_watches(c)), None)
    return AbortPreview(
        deployment_id=d.id,
        undo=[_line(cmd) for cmd in undos],
        endpoints=endpoints,
        in_flight=_step_name(in_flight) if in_flight is not None else None,
    )


def _only_watches(cmd: Command) -> bool:
    # Bakes, collections and analyses change nothing: abort drops them (core.machine).
    return Action(cmd.action) in {Action.BAKE, Action.COLLECT, Action.ANALYZE}


def _step_name(cmd: Command) -> str:
    return cmd.key.split("/", 2)[-1]


def _load(raw: dict[str, Any] | None) -> EndpointConfig | None:
    return EndpointConfig.model_validate(raw) if raw else None


def _weights(config: EndpointConfig | None) -> dict[str, float] | None:
    return {v.name: v.weight for v in config.variants} if config else None


def _outcome(
    name: str, region: str, now: EndpointConfig | None, after: EndpointConfig | None
) -> EndpointOutcome:
    return EndpointOutcome(
        name=name,
        region=region,
        now=_weights(now),
        after=_weights(after),
        shadow_now=now.shadow.variant.name if now and now.shadow else None,
        shadow_after=after.shadow.variant.name if after and after.shadow else None,
    )


def _line(cmd: Command) -> str:
    """One line per undo step, in the words of the step it undoes."""
    action, args, undoes = Action(cmd.action), cmd.args, _step_name(cmd).removesuffix("/undo")
    if action is Action.RESTORE_ENDPOINTS:
        names = ", ".join(sorted({c["name"] for c in args["changes"]}))
        return f"{undoes}: put {names} back as it was"
    if action is Action.REVERT_CHANGE:
        return f"{undoes}: revert change {args['change']['id']}"
    if action is Action.DELETE_ARTIFACT:
        return f"{undoes}: delete {', '.join(args['uris'])} (kept if another endpoint uses it)"
    if action is Action.DELETE_STAGED:
        return f"{undoes}: delete the staged {', '.join(args['uris'])} (kept if another deployment of the version needs it)"
    if action is Action.SET_STATUS:
        back = ", ".join(f"v{v} {s}" for v, s in args["statuses"].items())
        return f"{undoes}: registry status back to {back}"
    if action is Action.DELETE_ALARMS:
        count = sum(len(a["names"]) for a in args["alarms"])
        return f"{undoes}: delete {count} alarm(s)"
    if action is Action.RESTORE_ALARMS:
        count = sum(len(a["names"]) for a in args["alarms"])
        return f"{undoes}: put {count} alarm(s) back"
    if action is Action.RESTORE_ARTIFACTS:
        return f"{undoes}: put {len(args['moves'])} artifact(s) back"
    return f"{undoes}: {action.value}"
