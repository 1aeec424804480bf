"""decide(deployment, event) -> (deployment, commands): the whole life of a deployment, with no I/O.

The machine walks the plan (core.plan). Each forward step issues one command;
its result comes back as an event. Every change a command makes is written in
the deployment's journal together with the command that undoes it, so abort,
a fired alarm, a failed analysis or a failed step all end the same way: the
journal is undone in reverse, one command at a time, and the deployment ends
`aborted`, `rolled_back` or `failed` by the reason it stopped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.domain import (
    Approval,
    Command,
    Deployment,
    DeploymentState,
    EndReason,
    JournalEntry,
    Kind,
    Phase,
    Stage,
    StepProgress,
    iso,
)
from core.events import (
    AbortRequested,
    AlarmFired,
    AnalysisDone,
    Approved,
    DeploymentEvent,
    Finished,
    Started,
    StepFailed,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    UndoStarted,
    UndoStep,
    WaitingApproval,
)
from core.plan import Action, Step, deploy_plan, retire_plan
from core.spec import Gate, Shadow


class InvalidTransition(ValueError):
    """The event does not apply to the deployment in its current state."""


# ---------------------------------------------------------------- events


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime


class Start(Event):
    pass


class Succeeded(Event):
    command: Command
    result: dict[str, Any] = Field(default_factory=dict)


class Failed(Event):
    command: Command
    error: str


class Waiting(Event):
    """The command is not done yet (a bake, a collection), or the system it calls did not
    answer (`retrying`: the transient error): run it again at `until`."""

    command: Command
    until: datetime
    progress: StepProgress | None = None
    retrying: str | None = None


class Approve(Event):
    by: str
    gate: str | None = None
    # How many approvals the deployment had when the approver looked (a button rendered
    # then): decided on the fresh record, so a late click never passes a later gate.
    seen: int | None = None


class Abort(Event):
    by: str
    reason: str | None = None


# ---------------------------------------------------------------- plan access


def plan_of(d: Deployment) -> list[Step]:
    if d.kind is Kind.RETIRE:
        return retire_plan()
    return deploy_plan(
        d.spec, golden_on_endpoint=d.library is not None and d.library.container_only
    )


# ---------------------------------------------------------------- decide


def decide(d: Deployment, ev: Event) -> tuple[Deployment, list[Command]]:
    """The next deployment and the commands to run. Raises InvalidTransition."""
    d = d.model_copy(deep=True)
    if isinstance(ev, Start):
        return _start(d, ev)
    if isinstance(ev, Succeeded):
        return _succeeded(d, ev)
    if isinstance(ev, Failed):
        return _failed(d, ev)
    if isinstance(ev, Waiting):
        return _waiting(d, ev)
    if isinstance(ev, Approve):
        return _approve(d, ev)
    if isinstance(ev, Abort):
        return _abort(d, ev)
    raise InvalidTransition(f"unknown event {type(ev).__name__}")


def _log(d: Deployment, event: DeploymentEvent) -> None:
    d.events.append(event)
    d.updated_at = event.at


def _start(d: Deployment, ev: Start) -> tuple[Deployment, list[Command]]:
    if d.state is not DeploymentState.QUEUED:
        raise InvalidTransition(f"{d.id} has already started ({d.state})")
    d.state = DeploymentState.RUNNING
    _log(d, Started(at=iso(ev.at)))
    return _enter(d, 0, ev.at)


def _issue(d: Deployment, action: Action, name: str, args: dict[str, Any]) -> Command:
    d.seq += 1
    return Command(key=f"{d.id}/{d.seq:03d}/{name}", action=action.value, args=args)


def _enter(d: Deployment, index: int, at: datetime) -> tuple[Deployment, list[Command]]:
    """Move to plan step `index`: wait at a gate, issue its command, or finish."""
    plan = plan_of(d)
    d.wake_at = None
    if index >= len(plan):
        d.step = len(plan)
        d.stage = Stage.DONE
        d.state = DeploymentState.SUCCEEDED
        d.pending = []
        _log(d, Finished(at=iso(at), state=d.state.value))
        return d, []
    step = plan[index]
    d.step = index
    d.stage = step.stage
    if step.gate is not None:
        return _wait_at_gate(d, step.gate, at)
    d.state = DeploymentState.RUNNING
    cmd = _issue(d, step.action, step.name, dict(step.args))
    d.pending = [cmd]
    _log(d, StepStarted(at=iso(at), step=step.name, stage=step.stage.value))
    return d, [cmd]


def _wait_at_gate(d: Deployment, gate: Gate, at: datetime) -> tuple[Deployment, list[Command]]:
    d.state = DeploymentState.WAITING_APPROVAL
    d.pending = []
    d.context.gate = gate
    _log(d, WaitingApproval(at=iso(at), gate=gate.value))
    return d, []


def _take_pending(d: Deployment, key: str) -> bool:
    before = len(d.pending)
    d.pending = [c for c in d.pending if c.key != key]
    return len(d.pending) < before


def _is_undo(d: Deployment, key: str) -> JournalEntry | None:
    for entry in d.journal:
        if entry.undo is not None and entry.undo.key == key:
            return entry
    return None


def _succeeded(d: Deployment, ev: Succeeded) -> tuple[Deployment, list[Command]]:
    cmd = ev.command
    undo_of = _is_undo(d, cmd.key)
    was_pending = _take_pending(d, cmd.key)
    if undo_of is not None:
        if undo_of.undone:
            return d, list(d.pending)  # a duplicate result
        d.journal = [
            e.model_copy(update={"undone": True}) if e is undo_of else e for e in d.journal
        ]
        _log(d, UndoStep(at=iso(ev.at), step=_step_name(undo_of.key), action=cmd.action))
        return _next_undo(d, ev.at)
    if any(e.key == cmd.key for e in d.journal) or (not was_pending and d.state.terminal):
        return d, list(d.pending)  # a duplicate, or too late to matter
    undo = compensation_for(d, cmd, ev.result)
    d.journal.append(JournalEntry(key=cmd.key, action=cmd.action, undo=undo))
    if d.phase is Phase.COMPENSATING:
        # A forward step finished after abort was asked: undo it too.
        return _next_undo(d, ev.at) if not d.pending else (d, list(d.pending))
    if not was_pending:
        return d, list(d.pending)
    return _after_step(d, cmd, ev)


def _step_name(key: str) -> str:
    return key.split("/", 2)[-1]  # as Command.step: a journal entry keeps only the key


def _first_line(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)


def _after_step(d: Deployment, cmd: Command, ev: Succeeded) -> tuple[Deployment, list[Command]]:
    """Read a forward step's result and decide where to go."""
    action = Action(cmd.action)
    result = ev.result
    summary = result.get("summary")
    step = _step_name(cmd.key)
    at = iso(ev.at)
    try:
        d.context = d.context.merged(result.get("facts", {}))
    except ValueError as exc:
        # A handler's bug: undo what was done rather than stop the deployment where it is.
        error = f"its result cannot be used: {_first_line(exc)}"
        _log(d, StepFailed(at=at, step=step, error=error))
        return _begin_undo(d, EndReason.ERROR, f"{step}: {error}", ev.at)
    if action is Action.RUN_CHECKS and not result.get("passed", False):
        _log(d, StepFailed(at=at, step=step, error=f"checks failed: {summary}"))
        return _begin_undo(d, EndReason.ERROR, f"golden-data checks failed: {summary}", ev.at)
    if action is Action.CHECK_GOLDEN and not result.get("passed", False):
        _log(d, StepFailed(at=at, step=step, error=f"check failed: {summary}"))
        reason = f"golden-data check on the endpoint failed: {summary}"
        return _begin_undo(d, EndReason.ERROR, reason, ev.at)
    _log(d, StepSucceeded(at=at, step=step, summary=summary or None))
    if action is Action.BAKE and result.get("fired"):
        alarm = AlarmFired(at=at, **result["fired"][0])
        _log(d, alarm)
        message = (
            f"alarm {alarm.name} fired: {alarm.metric} {alarm.value:.4g} > {alarm.threshold:.4g}"
        )
        return _begin_undo(d, EndReason.ALARM, message, ev.at)
    elif action is Action.COLLECT:
        d.context.collect_started = d.context.collect_started or at
    elif action is Action.ANALYZE:
        return _after_analysis(d, result, ev.at)
    return _enter(d, d.step + 1, ev.at)


def _after_analysis(
    d: Deployment, result: dict[str, Any], at: datetime
) -> tuple[Deployment, list[Command]]:
    verdict = result.get("analysis", {})
    d.analysis = verdict
    kind = verdict.get("verdict")
    _log(d, AnalysisDone(at=iso(at), verdict=kind, summary=verdict.get("summary", "")))
    if kind == "pass":
        return _enter(d, d.step + 1, at)
    if kind == "fail":
        reason = f"shadow analysis failed: {verdict.get('summary', '')}".rstrip(": ")
        return _begin_undo(d, EndReason.ANALYSIS_FAILED, reason, at)
    strategy = d.spec.strategy
    assert isinstance(strategy, Shadow)
    started = datetime.fromisoformat(d.context.collect_started or iso(at))
    needed = verdict.get("needed_samples")
    live = strategy.traffic == "live"  # a replay file has nothing more to give
    if live and at < started + timedelta(seconds=strategy.max_wait_s) and needed:
        # Inconclusive: collect until the analysis says it has enough, then look again.
        # never ask for what is already there: the same data would give the same answer
        d.context.min_samples = max(int(needed), int(verdict.get("samples") or 0) + 1)
        collect = next(i for i, s in enumerate(plan_of(d)) if s.action is Action.COLLECT)
        return _enter(d, collect, at)
    # Out of time, out of replayed inputs, or no estimate of what would settle it: a person decides.
    return _wait_at_gate(d, Gate.BEFORE_PROMOTE, at)


def _failed(d: Deployment, ev: Failed) -> tuple[Deployment, list[Command]]:
    cmd = ev.command
    undo_of = _is_undo(d, cmd.key)
    was_pending = _take_pending(d, cmd.key)
    if undo_of is not None:
        left = [_step_name(e.key) for e in d.journal if e.undo is not None and not e.undone]
        d.state = DeploymentState.FAILED
        d.stage = Stage.UNDO
        d.error = (
            f"undo of {_step_name(undo_of.key)} failed: {ev.error}; "
            f"still to undo by hand: {', '.join(reversed(left))}"
        )
        _log(d, StepFailed(at=iso(ev.at), step=_step_name(cmd.key), error=ev.error))
        _log(d, Finished(at=iso(ev.at), state=d.state.value))
        return d, []
    if not was_pending:
        return d, list(d.pending)  # a stale failure of a command no longer wanted
    _log(d, StepFailed(at=iso(ev.at), step=_step_name(cmd.key), error=ev.error))
    if d.phase is Phase.COMPENSATING:
        return _next_undo(d, ev.at)
    return _begin_undo(d, EndReason.ERROR, f"{_step_name(cmd.key)}: {ev.error}", ev.at)


def _waiting(d: Deployment, ev: Waiting) -> tuple[Deployment, list[Command]]:
    if not any(c.key == ev.command.key for c in d.pending):
        return d, list(d.pending)
    d.wake_at = iso(ev.until)
    if ev.progress is not None:
        d.context.progress[ev.command.step] = ev.progress
    if ev.retrying is not None:
        attempts = ev.progress.attempts if ev.progress is not None else None
        _log(
            d,
            StepRetrying(
                at=iso(ev.at),
                step=ev.command.step,
                error=ev.retrying,
                attempt=attempts or 1,
                until=iso(ev.until),
            ),
        )
    return d, list(d.pending)


def _approve(d: Deployment, ev: Approve) -> tuple[Deployment, list[Command]]:
    if d.state is not DeploymentState.WAITING_APPROVAL:
        raise InvalidTransition(f"{d.id} is not waiting for approval (it is {d.state})")
    gate = str(d.waiting_at)
    if ev.gate is not None and ev.gate != gate:
        raise InvalidTransition(f"{d.id} waits at gate {gate}, not {ev.gate}")
    if ev.seen is not None and ev.seen != len(d.approvals):
        raise InvalidTransition(f"{d.id}: the gate that was approved has passed already")
    d.approvals.append(Approval(by=ev.by, at=iso(ev.at), gate=gate))
    _log(d, Approved(at=iso(ev.at), by=ev.by, gate=gate))
    d.context.gate = None
    return _enter(d, d.step + 1, ev.at)


def _abort(d: Deployment, ev: Abort) -> tuple[Deployment, list[Command]]:
    if d.state.terminal:
        raise InvalidTransition(f"{d.id} has already ended ({d.state})")
    if d.phase is Phase.COMPENSATING:
        raise InvalidTransition(f"{d.id} is already being undone ({d.end_reason})")
    _log(d, AbortRequested(at=iso(ev.at), by=ev.by, reason=ev.reason or ""))
    return _begin_undo(
        d, EndReason.ABORTED, f"aborted by {ev.by}" + (f": {ev.reason}" if ev.reason else ""), ev.at
    )


def _begin_undo(
    d: Deployment, reason: EndReason, message: str, at: datetime
) -> tuple[Deployment, list[Command]]:
    d.phase = Phase.COMPENSATING
    d.end_reason = reason
    d.error = message
    d.context.gate = None
    d.state = DeploymentState.RUNNING
    _log(d, UndoStarted(at=iso(at), reason=reason.value, message=message))
    # A wait (a bake, a collection, an analysis) changes nothing: stop it, do not wait it out.
    d.pending = [c for c in d.pending if Action(c.action) not in _ONLY_WATCHES]
    if d.pending:
        # A forward command is in flight: its result will arrive and be undone too.
        return d, list(d.pending)
    return _next_undo(d, at)


def _next_undo(d: Deployment, at: datetime) -> tuple[Deployment, list[Command]]:
    d.wake_at = None
    for entry in reversed(d.journal):
        if entry.undo is not None and not entry.undone:
            d.stage = Stage.UNDO
            d.pending = [entry.undo]
            return d, [entry.undo]
    assert d.end_reason is not None
    d.pending = []
    d.state = d.end_reason.final_state
    d.stage = Stage.DONE
    _log(d, Finished(at=iso(at), state=d.state.value))
    return d, []


# ---------------------------------------------------------------- compensation


_ONLY_WATCHES = {Action.BAKE, Action.COLLECT, Action.ANALYZE, Action.CHECK_GOLDEN}

_RESTORES_ENDPOINTS = {
    Action.CREATE_VARIANT,
    Action.SHIFT_TRAFFIC,
    Action.START_SHADOW,
    Action.STOP_SHADOW,
    Action.DRAIN_OLD,
    Action.REMOVE_TRAFFIC,
}


def compensation_for(d: Deployment, cmd: Command, result: dict[str, Any]) -> Command | None:
    """The command that undoes what `cmd` changed, read from its result; None if nothing changed."""
    action = Action(cmd.action)
    args: dict[str, Any]
    if action in _RESTORES_ENDPOINTS:
        if not result.get("changes"):
            return None
        undo, args = Action.RESTORE_ENDPOINTS, {"changes": result["changes"]}
    elif action in (Action.OPEN_CHANGE, Action.MERGE_CHANGE, Action.REMOVE_CODE):
        if not result.get("change"):
            return None
        undo, args = Action.REVERT_CHANGE, {"change": result["change"]}
    elif action is Action.VALIDATE:
        facts = result.get("facts", {})
        staged = [facts[k] for k in ("artifact_staging", "golden_staging") if facts.get(k)]
        if not staged:
            return None
        undo, args = Action.DELETE_STAGED, {"uris": staged}
    elif action is Action.COPY_ARTIFACT:
        if not result.get("created"):
            return None
        undo, args = Action.DELETE_ARTIFACT, {"uris": [result["uri"]]}
    elif action is Action.SET_STATUS:
        previous = result.get("previous")
        if not previous:
            return None
        undo, args = Action.SET_STATUS, {"statuses": previous}
    elif action is Action.CREATE_ALARMS:
        if not result.get("alarms"):
            return None
        undo, args = Action.DELETE_ALARMS, {"alarms": result["alarms"]}
    elif action is Action.REMOVE_ALARMS:
        if not result.get("removed"):
            return None
        undo, args = Action.RESTORE_ALARMS, {"alarms": result["removed"]}
    elif action is Action.TRASH_ARTIFACTS:
        if not result.get("moves"):
            return None
        undo, args = Action.RESTORE_ARTIFACTS, {"moves": result["moves"]}
    else:
        return None
    return Command(key=f"{cmd.key}/undo", action=undo.value, args=args)
