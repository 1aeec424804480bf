"""Typed records of the domain: model versions, deployments, the facts a deployment learns,
usage sites (its events are in `core.events`).

Everything here is data. Deciding what happens next lives in `core.machine`;
saving lives in `core.store`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict  # pydantic validates typing's TypedDict from 3.12 only

from core.events import DeploymentEvent, Sparse
from core.spec import DeploymentSpec, Gate
from core.versions import Version, shown

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Library(StrEnum):
    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    ONNX = "onnx"
    HUGGINGFACE = "huggingface"  # a Hugging Face model folder, as LLM servers (TGI, LMI) load it
    PYTORCH = "pytorch"  # a vision model: a TorchScript archive

    @property
    def container_only(self) -> bool:
        """Only its serving container loads it (mmm's runtime cannot): it is checked by its
        files (`core.container_models`) and served by SageMaker, never locally."""
        return self in CONTAINER_ONLY


CONTAINER_ONLY = frozenset({Library.HUGGINGFACE, Library.PYTORCH})


class VersionStatus(StrEnum):
    REGISTERED = "registered"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"  # replaced in production; files and alarms stay until retired
    RETIRED = "retired"


class ModelVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: Version
    library: Library
    # file format of the artifact: joblib, pickle, json, ubj, onnx; a container model's
    # weights: safetensors, bin, torchscript
    format: str
    artifact: str  # location in the registry's own storage (path or URI; may be a folder)
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
    version: Version
    deployment_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Command(BaseModel):
    """One idempotent unit of work for the worker, keyed by deployment and step."""

    model_config = ConfigDict(frozen=True)

    key: str  # unique per deployment: "<deployment>/<phase>/<n>/<action>"
    action: str  # an `Action` value
    args: dict[str, Any] = Field(default_factory=dict)

    @property
    def step(self) -> str:
        """The step it runs, as the deployment's progress and history name it."""
        return self.key.split("/", 2)[-1]


class JournalEntry(BaseModel):
    """A change made by a forward command, and the command that undoes it."""

    model_config = ConfigDict(frozen=True)

    key: str  # the forward command's key
    action: str
    undo: Command | None
    undone: bool = False


# ---------------------------------------------------------------- facts learnt on the way


class EndpointFact(TypedDict):
    """An endpoint a deployment changes, as it was last seen or written."""

    name: str
    region: str
    config: dict[str, Any] | None  # a core.ports.EndpointConfig dump; None: no endpoint there


class AlarmSet(TypedDict):
    """Alarms made for one variant in one region, with what they were made with (to remake them)."""

    endpoint: str
    region: str
    variant: str
    names: list[str]
    thresholds: dict[str, Any]  # core.spec.Alarms


class StepProgress(Sparse):
    """How far a long step (a bake, a collection) has got, between two looks at it."""

    model_config = ConfigDict(frozen=True)

    started: str | None = None  # ISO time of the first look
    of_s: float | None = None  # how long it lasts (a bake) or may last at most (a collection)
    samples: int | None = None  # collect: paired predictions so far
    target: int | None = None  # collect: paired predictions wanted
    attempts: int | None = None  # transient failures in a row (a system that did not answer)


class MissingFact(LookupError):
    """A step needs a fact that the steps before it should have learnt."""


def known(value: T | None, name: str) -> T:
    if value is None:
        raise MissingFact(f"no {name} learnt yet")
    return value


class Facts(Sparse):
    """What a deployment learns on the way (mostly from its commands' results), that later
    steps and their undo read."""

    # Unknown keys are kept (extra="allow"), not refused: a record saved by a newer release
    # may hold facts this one does not know, and a worker of this release saving it back must
    # not lose them (old and new workers share a store during an upgrade). Facts from a command
    # go through `merged()`, which refuses them: there, an undeclared key is a handler's typo.
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    versions: list[Version] | None = None  # retirement: the versions it retires
    library: Library | None = None
    sha256: str | None = None
    statuses: dict[str, str] = Field(default_factory=dict)  # version -> registry status
    endpoints: list[EndpointFact] = Field(default_factory=list)
    artifact_staging: str | None = None
    golden_staging: str | None = None
    artifact_production: str | None = None
    change: dict[str, Any] | None = None  # a core.ports.Change dump: the pull request
    alarms: list[AlarmSet] = Field(default_factory=list)
    # the versions that drain_old took off their last endpoint (finalize archives them)
    drained: list[Version] = Field(default_factory=list)
    gate: Gate | None = None  # the gate it waits at
    collect_started: str | None = None
    min_samples: int | None = None  # paired predictions an inconclusive analysis asked for
    progress: dict[str, StepProgress] = Field(default_factory=dict)  # per step name
    retire_alarms: list[AlarmSet] = Field(default_factory=list)
    code_deletions: list[str] = Field(default_factory=list)
    artifact_uris: list[str] = Field(default_factory=list)

    def merged(self, learnt: Mapping[str, Any]) -> Facts:
        """These facts updated with what a command learnt. Raises ValueError (pydantic's
        ValidationError is one) on a key not declared here or a value of the wrong type."""
        unknown = sorted(set(learnt) - set(Facts.model_fields))
        if unknown:
            raise ValueError(f"undeclared facts: {', '.join(unknown)}")
        new = Facts.model_validate(learnt)
        return self.model_copy(update={k: getattr(new, k) for k in learnt})


# ---------------------------------------------------------------- deployments


class Deployment(BaseModel):
    id: str
    kind: Kind = Kind.DEPLOY
    model: str
    version: Version
    endpoint: str
    regions: list[str]
    spec: DeploymentSpec
    # The version's library, fixed at creation like the spec: the plan depends on it (a
    # model only its container loads has its golden data checked on the endpoint).
    library: Library | None = None
    state: DeploymentState = DeploymentState.QUEUED
    stage: Stage = Stage.VALIDATE
    phase: Phase = Phase.FORWARD
    step: int = 0  # index into the plan (core.plan), derived from kind, spec and library
    requested_by: str
    created_at: str
    updated_at: str
    approvals: list[Approval] = Field(default_factory=list)
    events: list[DeploymentEvent] = Field(default_factory=list)
    pending: list[Command] = Field(default_factory=list)
    journal: list[JournalEntry] = Field(default_factory=list)
    end_reason: EndReason | None = None
    error: str | None = None
    analysis: dict[str, Any] | None = None
    context: Facts = Field(default_factory=Facts)
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

    @property
    def waiting_at(self) -> str | None:
        """The gate it waits at for an approval; None when it waits for none."""
        gate = self.context.gate
        return gate.value if gate and self.state is DeploymentState.WAITING_APPROVAL else None

    @property
    def blocked(self) -> str | None:
        """Why nothing happens until a person acts, in one line; None when it moves on its own
        (or has ended)."""
        if not self.active:
            return None
        if self.damaged is not None:
            return f"its record cannot be read as saved ({self.damaged})"
        if self.state is DeploymentState.WAITING_APPROVAL:
            return f"waiting for an approval at gate {self.waiting_at}"
        return None

    @property
    def due_at(self) -> float | None:
        """When (UNIX time) a worker should next look at it: 0.0 (now), at `wake_at`, or None:
        never (ended, damaged, or waiting for a person with nothing pending)."""
        if self.damaged is not None or not self.active:
            return None
        if not self.pending and self.state is not DeploymentState.QUEUED:
            return None
        return datetime.fromisoformat(self.wake_at).timestamp() if self.wake_at else 0.0

    def due(self, now: float) -> bool:
        due_at = self.due_at
        return due_at is not None and due_at <= now

    def public(self) -> dict[str, Any]:
        """The deployment object of CONTRACT.md (plus a few extra keys)."""
        return {
            "id": self.id,
            "kind": str(self.kind),
            "model": self.model,
            "version": shown(self.version),
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
            "events": [e.model_dump(mode="json") for e in self.events],
            "analysis": self.analysis,
            "error": self.shown_error,
            "end_reason": str(self.end_reason) if self.end_reason else None,
            "waiting_at": self.waiting_at,
        }


class AuditRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any] = Field(default_factory=dict)
