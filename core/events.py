"""Typed events of a deployment's history, each with its one text rendering.

A deployment's history is append-only and public: `mmm status --json` shows
each event as the dict it was saved as, so every kind below dumps to exactly
that dict (`at`, `type`, then its own keys; an optional key is left out when
it has nothing to say). The CLI, the dashboard and the chat bot all show an
event by its `line()`, coloured (or not) by its `tone`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    SerializerFunctionWrapHandler,
    Tag,
    model_serializer,
)

# How a front end shows an event: a colour, an icon, nothing. Never part of the text.
Tone = Literal["ok", "fail", "wait", "abort", "undo", "info", "done"]


class Sparse(BaseModel):
    """A record that leaves out of its dump the optional fields still empty (None, [], {}),
    so it dumps to the dict it was saved as before it was typed: absent keys, not nulls.
    (Here rather than in core.domain, which imports this module, because the facts of a
    deployment there are sparse too.)"""

    @model_serializer(mode="wrap")
    def _sparse(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            empty = value is None or (isinstance(value, list | dict) and not value)
            if empty and not field.is_required() and name in data:
                del data[name]
        return data


class _Event(Sparse, ABC):
    model_config = ConfigDict(frozen=True)

    at: str  # ISO 8601, UTC, milliseconds (core.domain.iso)

    TONE: ClassVar[Tone] = "info"
    # True: in the history, but not worth a line where people follow a deployment's progress.
    QUIET: ClassVar[bool] = False

    @abstractmethod
    def line(self) -> str:
        """What a person reads, without the time: a six-character mark, then the detail."""

    @property
    def tone(self) -> Tone:
        return self.TONE


class Created(_Event):
    type: Literal["created"] = "created"
    by: str
    QUIET = True

    def line(self) -> str:
        return f"new   requested by {self.by}"


class Started(_Event):
    type: Literal["started"] = "started"
    QUIET = True

    def line(self) -> str:
        return "go    started"


class StepStarted(_Event):
    type: Literal["step_started"] = "step_started"
    step: str
    stage: str
    QUIET = True

    def line(self) -> str:
        return f"run   {self.step:<16} ({self.stage})"


class StepSucceeded(_Event):
    type: Literal["step_succeeded"] = "step_succeeded"
    step: str
    summary: str | None = None
    TONE = "ok"

    def line(self) -> str:
        return f"ok    {self.step:<16} {self.summary or ''}".rstrip()


class StepFailed(_Event):
    type: Literal["step_failed"] = "step_failed"
    step: str
    error: str
    TONE = "fail"

    def line(self) -> str:
        return f"FAIL  {self.step:<16} {self.error}".rstrip()


class StepRetrying(_Event):
    """A system the step calls did not answer (a timeout, a 5xx, a rate limit): the step is
    tried again at `until`, and fails once it has been tried `worker.max_attempts` times."""

    type: Literal["step_retrying"] = "step_retrying"
    step: str
    error: str
    attempt: int  # failures in a row so far
    until: str  # ISO time of the next try
    TONE = "wait"

    def line(self) -> str:
        again = self.until[11:19]  # HH:MM:SS, UTC
        return f"wait  {self.step:<16} {self.error} (attempt {self.attempt}; again at {again})"


class WaitingApproval(_Event):
    type: Literal["waiting_approval"] = "waiting_approval"
    gate: str
    TONE = "wait"

    def line(self) -> str:
        return f"WAIT  gate {self.gate}: needs an approval"


class Approved(_Event):
    type: Literal["approved"] = "approved"
    by: str
    gate: str
    TONE = "ok"

    def line(self) -> str:
        return f"ok    approved by {self.by} at gate {self.gate}"


class AbortRequested(_Event):
    type: Literal["abort_requested"] = "abort_requested"
    by: str
    reason: str  # "" when none was given
    TONE = "abort"

    def line(self) -> str:
        return f"ABORT requested by {self.by} {self.reason}".rstrip()


class AlarmFired(_Event):
    """The first alarm that fired during a bake (core.ports.AlarmState, as it was read)."""

    type: Literal["alarm"] = "alarm"
    name: str
    metric: str
    value: float
    threshold: float
    firing: bool | None = None
    TONE = "fail"

    def line(self) -> str:
        return f"ALARM {self.name}: {self.metric} {self.value:.4g} > {self.threshold:.4g}"


class AnalysisDone(_Event):
    type: Literal["analysis"] = "analysis"
    verdict: str | None  # pass, fail, inconclusive; None from an analysis that gave none
    summary: str
    TONE = "ok"  # the step ran; what the verdict means comes next (undo, gate or promotion)

    def line(self) -> str:
        return f"ok    {'analysis':<16} {self.summary}".rstrip()


class UndoStarted(_Event):
    type: Literal["undo_started"] = "undo_started"
    reason: str  # core.domain.EndReason
    message: str
    TONE = "undo"

    def line(self) -> str:
        return f"UNDO  {self.message}"


class UndoStep(_Event):
    type: Literal["undo_step"] = "undo_step"
    step: str  # the forward step undone
    action: str  # the undoing command's action
    TONE = "undo"

    def line(self) -> str:
        return f"undo  {self.step}"


class Finished(_Event):
    type: Literal["finished"] = "finished"
    state: str  # core.domain.DeploymentState, terminal

    def line(self) -> str:
        return f"=>    {self.state}"

    @property
    def tone(self) -> Tone:
        if self.state == "succeeded":
            return "done"
        return "abort" if self.state == "aborted" else "fail"


class OtherEvent(_Event):
    """An event of a kind this release does not know (from another release): kept as saved,
    so the record still loads and saves back unchanged."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str
    QUIET = True

    def line(self) -> str:
        detail = " ".join(f"{k}={v}" for k, v in (self.model_extra or {}).items() if v != "")
        return f"-     {self.type} {detail}".rstrip()


_KINDS = (
    Created,
    Started,
    StepStarted,
    StepSucceeded,
    StepFailed,
    StepRetrying,
    WaitingApproval,
    Approved,
    AbortRequested,
    AlarmFired,
    AnalysisDone,
    UndoStarted,
    UndoStep,
    Finished,
)
_KNOWN = {k.model_fields["type"].default for k in _KINDS}


def _kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) and kind in _KNOWN else "other"


DeploymentEvent = Annotated[
    Annotated[Created, Tag("created")]
    | Annotated[Started, Tag("started")]
    | Annotated[StepStarted, Tag("step_started")]
    | Annotated[StepSucceeded, Tag("step_succeeded")]
    | Annotated[StepFailed, Tag("step_failed")]
    | Annotated[StepRetrying, Tag("step_retrying")]
    | Annotated[WaitingApproval, Tag("waiting_approval")]
    | Annotated[Approved, Tag("approved")]
    | Annotated[AbortRequested, Tag("abort_requested")]
    | Annotated[AlarmFired, Tag("alarm")]
    | Annotated[AnalysisDone, Tag("analysis")]
    | Annotated[UndoStarted, Tag("undo_started")]
    | Annotated[UndoStep, Tag("undo_step")]
    | Annotated[Finished, Tag("finished")]
    | Annotated[OtherEvent, Tag("other")],
    Discriminator(_kind),
]
