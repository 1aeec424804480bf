"""The external systems mmm drives, as typed Protocols with their errors.

Every adapter raises only the errors below. `TransientError` means "try the
same call again later" (the worker retries it with backoff); any other
`PortError` is final for that command. Every mutating call is idempotent:
calling it twice with the same arguments leaves the same state as once.

Nothing here waits on the outside world: work that takes long (checks on a
change, an endpoint update) is started by one call and looked at by the next
(`CodeHost.checks` returns None until done), so a worker's command stays far
shorter than its lease and a slow system never holds a worker. The worker
renews the lease while a command runs all the same (core.worker.LeaseKeeper).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from core.domain import Deployment, Library, ModelVersion, VersionStatus
from core.feed import FeedEntry
from core.spec import Alarms, Autoscaling
from core.versions import Version


class PortError(Exception):
    """A call to an external system failed for good."""


class NotFound(PortError):
    """The named thing does not exist."""


class InvalidInput(PortError):
    """The request is malformed (bad artifact, bad golden data, ...)."""


class ModelFailed(InvalidInput):
    """The model itself raised while predicting (the instances fitted it)."""


class TransientError(PortError):
    """A passing fault (timeout, throttling, busy): the same call may succeed later, no
    sooner than `retry_after_s` when the system said when (a rate limit's reset)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# ---------------------------------------------------------------- registry


class Registry(Protocol):
    """Model registry: versions, their artifacts, golden data and status."""

    def register(
        self,
        name: str,
        artifact: Path,
        library: Library,
        golden: Path | None,
        owner: str | None,
        actor: str,
    ) -> ModelVersion:
        """Add a new version; raises InvalidInput for an unreadable file."""
        ...

    def get(self, name: str, version: str) -> ModelVersion:
        """Raises NotFound naming the model or the version."""
        ...

    def versions(self, name: str | None = None) -> list[ModelVersion]: ...

    def set_status(
        self,
        name: str,
        version: str,
        status: VersionStatus,
        actor: str,
        *,
        endpoint: str | None = None,
    ) -> VersionStatus:
        """Set the status; returns the previous one. A no-op when already at `status`.

        `endpoint` is the endpoint the status is about (the deployment's; None when it is
        about no one endpoint, as in a retirement). Registries that can tag a version with
        it do (Comet: `endpoint:NAME`); the others ignore it."""
        ...

    def fetch(self, mv: ModelVersion, what: str, dest: Path) -> Path:
        """Copy the version's `artifact` or `golden` file to `dest` (a folder); returns the file."""
        ...


# ---------------------------------------------------------------- artifacts


class ArtifactStore(Protocol):
    """Buckets of files: `staging` holds what is registered, `production` what serves."""

    def put(self, bucket: str, key: str, src: Path) -> str:
        """Store `src` at bucket/key (no-op when the same bytes are there); returns its URI."""
        ...

    def copy(self, src_uri: str, bucket: str, key: str) -> str: ...

    def get(self, uri: str, dest: Path) -> Path: ...

    def exists(self, uri: str) -> bool: ...

    def delete(self, uri: str) -> bool:
        """Remove the object; returns False when it was already gone."""
        ...

    def list(self, bucket: str, prefix: str = "") -> list[str]: ...

    def uri(self, bucket: str, key: str) -> str: ...

    def locate(self, uri: str) -> tuple[str, str] | None:
        """(bucket, key) of a URI this store made (`uri` read back); None for any other."""
        ...

    def local_path(self, uri: str) -> Path:
        """A local file holding the object (downloaded to a cache when remote)."""
        ...

    def code_uri(self, uri: str) -> str:
        """What generated code names for the object: a file path for the embedded store
        (the local checks read it there), the URI itself for a remote store (`s3://...`)."""
        ...


# ---------------------------------------------------------------- code host


class Change(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str  # stable per deployment: the branch name
    url: str
    head: str  # commit sha of the change
    merged_sha: str | None = None


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    summary: str
    output: str = ""


class CodeHost(Protocol):
    """The consuming application's repository: branch, checks, merge."""

    def open_change(
        self, change_id: str, files: dict[str, str], deletions: list[str], title: str, author: str
    ) -> Change:
        """Commit `files` (and remove `deletions`) on a branch; reuses an open change of that id."""
        ...

    def checks(self, change: Change) -> CheckResult | None:
        """The result of the repository's tests on the change's head; None while they run.
        Never waits: the first call starts them (once per head, however many callers in
        however many processes ask), later calls look; checks whose runner died are
        started again."""
        ...

    def merge(self, change: Change) -> Change:
        """Merge into main; returns the change with `merged_sha`. A no-op when merged."""
        ...

    def revert(self, change: Change, author: str) -> str | None:
        """Undo a merged change on main (a revert commit), or close an open one."""
        ...

    def files(self, prefix: str = "") -> list[str]:
        """Paths on main under `prefix`."""
        ...

    def read(self, path: str) -> str | None:
        """A file's text on main, or None when it is not there."""
        ...


# ---------------------------------------------------------------- serving


class Variant(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # "<model>-v<version>"
    model: str
    version: Version
    library: Library
    artifact: str  # URI in the production bucket
    weight: float = Field(ge=0, le=100)  # percent of live traffic


class ShadowConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    variant: Variant  # weight is ignored: it serves no caller
    sample_percent: float = Field(default=100, gt=0, le=100)


class EndpointConfig(BaseModel):
    """What an endpoint should serve: production variants with weights, maybe a shadow."""

    model_config = ConfigDict(frozen=True)

    name: str
    region: str
    variants: list[Variant]
    shadow: ShadowConfig | None = None
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    env: dict[str, str] = Field(default_factory=dict)
    invocation_timeout_ms: int = 2000
    startup_timeout_s: int = 600  # model data download and container start, each
    volume_size_gb: int | None = None  # storage per instance; None: the platform's default
    # Each production variant scales on its own between min and max (never the shadow);
    # None: every variant keeps `instance_count` instances.
    autoscaling: Autoscaling | None = None


class CapturedPair(BaseModel):
    """One request answered by both production and shadow."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    input: Any
    production: Any
    shadow: Any
    production_variant: str
    shadow_variant: str
    production_ms: float | None  # None where serving records no latency (SageMaker)
    shadow_ms: float | None
    production_error: str | None = None
    shadow_error: str | None = None


class Serving(Protocol):
    """Endpoints with weighted variants and shadow mirroring."""

    def get_endpoint(self, name: str, region: str) -> EndpointConfig | None: ...

    def endpoints(self) -> list[EndpointConfig]: ...

    def apply(self, config: EndpointConfig) -> EndpointConfig | None:
        """Create or update the endpoint to `config`; returns the previous config or None."""
        ...

    def delete(self, name: str, region: str) -> bool: ...

    def settled(self, name: str, region: str, config: EndpointConfig | None) -> str | None:
        """None once the endpoint serves `config` (is gone, for None); else what it still
        waits on ("Updating", ...). Never waits. Raises PortError when the change failed or
        was rolled back (the endpoint serves something else), with the reason."""
        ...

    def captured(self, name: str, region: str, shadow_variant: str) -> Iterator[CapturedPair]:
        """Pairs captured while `shadow_variant` shadowed the endpoint."""
        ...

    def replay(self, name: str, region: str, requests: list[tuple[str, Any]]) -> int:
        """Send each `(request id, input)` through production and the shadow as a request
        of its own, captured under that id; returns how many were sent."""
        ...


@runtime_checkable
class VariantCalls(Protocol):
    """Serving that can call one variant of an endpoint, whatever its weight (SageMaker's
    `TargetVariant`): how the golden data of a model only its container loads is checked
    before any traffic reaches it. The embedded gateway never serves such a model."""

    def predict(self, name: str, region: str, variant: str, inputs: list[Any]) -> list[Any]:
        """One prediction per input, from `variant` alone. Raises InvalidInput when the model
        refuses the inputs (its reason), PortError when the endpoint cannot be called."""
        ...


# ---------------------------------------------------------------- monitor


class AlarmState(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    metric: str
    value: float
    threshold: float
    firing: bool


class VariantFigures(BaseModel):
    """A variant's live traffic over the last `window_s` seconds (what a dashboard shows)."""

    model_config = ConfigDict(frozen=True)

    endpoint: str
    region: str
    variant: str
    role: str  # "production" (answers callers) or "shadow" (mirrored, answers nobody)
    window_s: float
    requests: int
    request_rate: float  # requests per second over the window
    error_rate: float  # errors / requests; 0.0 without requests
    p99_ms: float | None  # None without requests or without one whose time was measured

    @classmethod
    def counted(
        cls,
        endpoint: str,
        region: str,
        variant: str,
        role: str,
        window_s: float,
        requests: int,
        errors: int,
        p99_ms: float | None,
    ) -> VariantFigures:
        """The figures of `requests` and `errors` counted over the window."""
        return cls(
            endpoint=endpoint,
            region=region,
            variant=variant,
            role=role,
            window_s=window_s,
            requests=requests,
            request_rate=requests / window_s,
            error_rate=errors / requests if requests else 0.0,
            p99_ms=p99_ms if requests else None,
        )


class AlarmRef(NamedTuple):
    """An alarm where it lives: the same name may exist in several regions."""

    region: str
    name: str


class Monitor(Protocol):
    """Alarms on an endpoint's variants, watched during bakes, and their live figures."""

    def ensure_alarms(self, endpoint: str, region: str, variant: str, alarms: Alarms) -> list[str]:
        """Create (or update) the variant's alarms; returns their names."""
        ...

    def delete_alarms(self, names: list[str], region: str) -> None: ...

    def evaluate(
        self, names: list[str], region: str, since: float | None = None
    ) -> list[AlarmState]:
        """Current state of the named alarms; `since` is a UNIX time bounding the window."""
        ...

    def alarms(self, prefix: str = "") -> list[AlarmRef]:
        """Every alarm whose name starts with `prefix`, in every region, sorted."""
        ...

    def figures(
        self, endpoint: str, region: str, variant: str, role: str, window_s: float = 60.0
    ) -> VariantFigures:
        """The variant's traffic in `role` over the last `window_s` seconds (zeros when none)."""
        ...


# ---------------------------------------------------------------- notifier


class Notifier(Protocol):
    """Tells people how deployments go (a Slack message per deployment, updated in place, and
    its thread); fed by the change feed (core.notify), never inside a worker's lease."""

    def deliver(
        self, entry: FeedEntry, deployment: Deployment, kept: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """Tell of `entry` (`deployment` is the record as it is now). `kept` is what the last
        delivery for this deployment returned (e.g. the channel and ts of its message); the
        value returned is kept for the next one. May be called again with an entry it has
        seen (at least once): be idempotent. Raise TransientError to be called again later."""
        ...


# ---------------------------------------------------------------- all of them


@dataclass
class Ports:
    registry: Registry
    artifacts: ArtifactStore
    codehost: CodeHost
    serving: Serving
    monitor: Monitor
    notifier: Notifier
