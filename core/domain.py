"""Typed records of the domain: model versions, deployments, events, usage sites.

Everything here is data. Deciding what happens next lives in `core.machine`;
saving lives in `core.store`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.spec import DeploymentSpec


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Library(StrEnum):
    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    ONNX = "onnx"


class VersionStatus(StrEnum):
    REGISTERED = "registered"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"  # replaced in production; files and alarms stay until retired
    RETIRED = "retired"


class ModelVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    library: Library
    format: str  # file format of the artifact: joblib, pickle, json, ubj, onnx
    artifact: str  # location in the registry's own storage (path or URI)
    golden: str | None = None
    owner: str | None = None
    status: VersionStatus = VersionStatus.REGISTERED
    registry_ref: str  # how the registry names it: local path or Comet item id
    created_by: str
    created_at: str
    sha256: str


class DeploymentState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {
        DeploymentState.SUCCEEDED,
        DeploymentState.FAILED,
        DeploymentState.ABORTED,
        DeploymentState.ROLLED_BACK,
    }
)


class Stage(StrEnum):
    VALIDATE = "validate"
    CODEGEN = "codegen"
    VERIFY = "verify"
    MERGE = "merge"
    PROVISION = "provision"
    ROLLOUT = "rollout"
    FINALIZE = "finalize"
    RETIRE = "retire"
    UNDO = "undo"
    DONE = "done"


class Kind(StrEnum):
    DEPLOY = "deploy"
    RETIRE = "retire"


class Phase(StrEnum):
    FORWARD = "forward"
    COMPENSATING = "compensating"


class EndReason(StrEnum):
    """Why a deployment stopped going forward; picks the terminal state after undo."""

    ABORTED = "aborted"
    ALARM = "alarm"
    ANALYSIS_FAILED = "analysis_failed"
    ERROR = "error"

    @property
    def final_state(self) -> DeploymentState:
        return {
            EndReason.ABORTED: DeploymentState.ABORTED,
            EndReason.ALARM: DeploymentState.ROLLED_BACK,
            EndReason.ANALYSIS_FAILED: DeploymentState.ROLLED_BACK,
            EndReason.ERROR: DeploymentState.FAILED,
        }[self]


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True)

    by: str
    at: str
    gate: str


class UsageKind(StrEnum):
    ENDPOINT = "endpoint"
    CODE = "code"
    ARTIFACT = "artifact"
    MONITOR = "monitor"
    REGISTRY = "registry"


class UsageSite(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: UsageKind
    location: str
    region: str | None = None
    model: str
    version: int
    deployment_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Command(BaseModel):
    """One idempotent unit of work for the worker, keyed by deployment and step."""

    model_config = ConfigDict(frozen=True)

    key: str  # unique per deployment: "<deployment>/<phase>/<n>/<action>"
    action: str  # an `Action` value
    args: dict[str, Any] = Field(default_factory=dict)


class JournalEntry(BaseModel):
    """A change made by a forward command, and the command that undoes it."""

    model_config = ConfigDict(frozen=True)

    key: str  # the forward command's key
    action: str
    undo: Command | None
    undone: bool = False


class Deployment(BaseModel):
    id: str
    kind: Kind = Kind.DEPLOY
    model: str
    version: int
    endpoint: str
    regions: list[str]
    spec: DeploymentSpec
    state: DeploymentState = DeploymentState.QUEUED
    stage: Stage = Stage.VALIDATE
    phase: Phase = Phase.FORWARD
    step: int = 0  # index into the plan (core.plan), which is derived from kind and spec
    requested_by: str
    created_at: str
    updated_at: str
    approvals: list[Approval] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    pending: list[Command] = Field(default_factory=list)
    journal: list[JournalEntry] = Field(default_factory=list)
    end_reason: EndReason | None = None
    error: str | None = None
    analysis: dict[str, Any] | None = None
    context: dict[str, Any] = Field(default_factory=dict)  # facts learnt on the way
    force: bool = False
    wake_at: str | None = None
    rev: int = 0  # optimistic concurrency: bumped by the store on every save
    seq: int = 0  # commands issued so far; makes command keys unique
    # Why the stored record could not be read as saved (core.store.load_record); never saved.
    damaged: str | None = Field(default=None, exclude=True)

    @property
    def strategy(self) -> str:
        return "retire" if self.kind is Kind.RETIRE else str(self.spec.strategy.kind)

    @property
    def active(self) -> bool:
        return not self.state.terminal

    @property
    def shown_error(self) -> str | None:
        """The error, led by why the record is damaged when it is."""
        if self.damaged is None:
            return self.error
        note = f"record cannot be read as saved ({self.damaged})"
        if self.active:
            note += f"; `mmm abort {self.id}` ends it"
        return f"{note}; {self.error}" if self.error else note

    def public(self) -> dict[str, Any]:
        """The deployment object of CONTRACT.md (plus a few extra keys)."""
        return {
            "id": self.id,
            "kind": str(self.kind),
            "model": self.model,
            "version": self.version,
            "endpoint": self.endpoint,
            "regions": list(self.regions),
            "strategy": self.strategy,
            "state": str(self.state),
            "stage": str(self.stage),
            "phase": str(self.phase),
            "step": self.step,
            "requested_by": self.requested_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "approvals": [a.model_dump() for a in self.approvals],
            "events": list(self.events),
            "analysis": self.analysis,
            "error": self.shown_error,
            "end_reason": str(self.end_reason) if self.end_reason else None,
            "waiting_at": self.context.get("gate")
            if self.state is DeploymentState.WAITING_APPROVAL
            else None,
        }


class AuditRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any] = Field(default_factory=dict)
