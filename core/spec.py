"""The deployment file and the workspace settings (`mmm.yaml`): parsing and validation.

Both are strict: an unknown key is an error that names it, so a typo never
passes silently. Errors are raised as `SpecError` with one readable line:
"<file>: <key.path>: <reason>".
"""

from __future__ import annotations

import itertools
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.names import check_endpoint, check_region


class SpecError(ValueError):
    """A deployment file or settings file is malformed or invalid. The message is one line:
    control characters (and others that hide or reorder text) from the file or its path
    are shown escaped."""

    def __init__(self, message: str) -> None:
        super().__init__(_printable(message))


def _printable(text: str) -> str:
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


class Strict(BaseModel):
    # inf and nan would be saved as JSON null and then fail every later read of the record
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Gate(StrEnum):
    """Points where a deployment waits for a person's approval."""

    BEFORE_MERGE = "before_merge"
    BEFORE_PROVISION = "before_provision"
    BEFORE_ROLLOUT = "before_rollout"
    BETWEEN_STEPS = "between_steps"  # blue-green: after each step but the last
    BEFORE_PROMOTE = "before_promote"  # shadow: after analysis, before promotion
    BEFORE_FINALIZE = "before_finalize"


class StrategyKind(StrEnum):
    ALL_AT_ONCE = "all-at-once"
    BLUE_GREEN = "blue-green"
    SHADOW = "shadow"


def _check_steps(steps: list[int]) -> list[int]:
    if not steps:
        raise ValueError("needs at least one step")
    if any(not 0 < s <= 100 for s in steps):
        raise ValueError("each step is a traffic percent from 1 to 100")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise ValueError("steps must increase")
    if steps[-1] != 100:
        raise ValueError("the last step must be 100")
    return steps


class AllAtOnce(Strict):
    kind: Literal[StrategyKind.ALL_AT_ONCE] = StrategyKind.ALL_AT_ONCE
    bake_s: float = Field(default=0, ge=0, le=86_400)


class BlueGreen(Strict):
    kind: Literal[StrategyKind.BLUE_GREEN] = StrategyKind.BLUE_GREEN
    steps: list[int] = Field(default_factory=lambda: [10, 50, 100])
    bake_s: float = Field(default=60, ge=0, le=86_400)

    _steps = field_validator("steps")(_check_steps)


class Replay(Strict):
    replay: str


class Shadow(Strict):
    kind: Literal[StrategyKind.SHADOW] = StrategyKind.SHADOW
    sample_percent: float = Field(default=100, gt=0, le=100)
    min_samples: int = Field(default=500, ge=1, le=10_000_000)
    traffic: Literal["live"] | Replay = "live"
    auto_approve: bool = False
    then: Literal[StrategyKind.ALL_AT_ONCE, StrategyKind.BLUE_GREEN] = StrategyKind.ALL_AT_ONCE
    steps: list[int] = Field(default_factory=lambda: [10, 50, 100])  # when then: blue-green
    bake_s: float = Field(default=60, ge=0, le=86_400)
    max_wait_s: float = Field(default=3600, ge=0, le=7 * 86_400)  # inconclusive: then a gate

    _steps = field_validator("steps")(_check_steps)


Strategy = Annotated[AllAtOnce | BlueGreen | Shadow, Field(discriminator="kind")]


class Instance(Strict):
    type: str = "ml.m5.large"
    count: int = Field(default=1, ge=1, le=100)
    volume_gb: int | None = Field(default=None, ge=1, le=512)  # SageMaker: storage per instance


class Autoscaling(Strict):
    # SageMaker keeps at least one instance of a variant it scales: 0 is refused at the door
    min: int = Field(default=1, ge=1, le=10_000)
    max: int = Field(default=1, ge=1, le=10_000)
    target_invocations_per_instance: int = Field(default=100, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class Timeouts(Strict):
    startup_s: int = Field(default=600, ge=1, le=3600)
    invocation_ms: int = Field(default=2000, ge=1, le=3_600_000)


class Alarms(Strict):
    """Thresholds of the alarms watched during every bake."""

    error_rate: float = Field(default=0.05, ge=0, le=1)  # share of failed invocations
    p99_latency_ms: float = Field(default=1000, gt=0, le=3_600_000)
    min_requests: int = Field(default=20, ge=1, le=1_000_000_000)  # fewer: no verdict on a window


class AnalysisSpec(Strict):
    """Tolerances of the shadow equivalence analysis (method and defaults: docs/analysis.md)."""

    # chance of a false fail (any metric, Holm) and of a false pass (each metric)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    # numbers: largest mean paired change allowed, in production standard deviations
    mean_shift_sd: float = Field(default=0.1, gt=0, le=1000)
    # numbers: largest shift of any of production's 5 %...95 % quantiles, in percentile
    # ranks: |share of shadow outputs at or below production's q-quantile - q|
    max_quantile_shift: float = Field(default=0.05, gt=0, lt=1)
    # labels: smallest agreement rate allowed between production and shadow
    min_agreement: float = Field(default=0.98, gt=0, lt=1)
    # operational: largest allowed shadow error rate above production's
    max_error_rate_increase: float = Field(default=0.01, gt=0, le=1)
    # operational: largest allowed ratio of shadow p99 latency to production's ...
    max_latency_ratio: float = Field(default=1.5, gt=0, le=1000)
    # ... or this many ms above production's p99, whichever allows more (sub-ms jitter is noise)
    latency_slack_ms: float = Field(default=5.0, ge=0, le=3_600_000)
    # fewest pairs a metric needs before it may pass (below it: inconclusive at best)
    min_pairs: int = Field(default=100, ge=2, le=10_000_000)


# A token, not a count of tokens (MAX_NEW_TOKENS) nor a tokenizer setting (TOKENIZERS_...):
# LLM servers are configured by such names.
_SECRET_NAME = re.compile(
    r"(SECRET|TOKEN(?!S|IZER)|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY|CREDENTIAL)", re.I
)
_ENV_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


class DeploymentSpec(Strict):
    """The deployment file of CONTRACT.md. Every key is optional."""

    endpoint: str | None = None
    regions: list[str] = Field(default_factory=lambda: ["local"])
    # Several regions roll out in waves, in the order listed: `region` runs each region's
    # provisioning and rollout before the next region starts; `step` provisions each region
    # in turn, then takes every traffic step (and its bake) region by region.
    waves: Literal["region", "step"] = "region"
    instance: Instance = Field(default_factory=Instance)
    autoscaling: Autoscaling | None = None
    timeouts: Timeouts = Field(default_factory=Timeouts)
    env: dict[str, str] = Field(default_factory=dict)
    gates: list[Gate] = Field(default_factory=list)
    strategy: Strategy = Field(default_factory=AllAtOnce)
    alarms: Alarms = Field(default_factory=Alarms)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    tolerance: float = Field(default=1e-6, ge=0, le=1e12)  # golden data: absolute tolerance

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        return None if v is None else check_endpoint(v)

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one region")
        if len(set(v)) != len(v):
            raise ValueError("a region is listed twice")
        return [check_region(r) for r in v]

    @field_validator("env")
    @classmethod
    def _no_secrets(cls, v: dict[str, str]) -> dict[str, str]:
        # Literal secrets would land in state, logs and generated code: only references pass.
        for key, value in v.items():
            if _SECRET_NAME.search(key) and not _ENV_REFERENCE.match(str(value)):
                # The reference goes on as its text (nothing expands it): say so, since a
                # model expecting the value would read the placeholder.
                raise ValueError(
                    f"{key} looks like a secret: write a reference such as ${{{key}}}, passed "
                    "on as that text, not expanded (the model fetches the secret itself; "
                    "see SECURITY.md, Known limits)"
                )
        return v


# ---------------------------------------------------------------- settings (mmm.yaml)


class Backends(Strict):
    store: Literal["sqlite", "dynamodb"] = "sqlite"
    registry: Literal["local", "comet"] = "local"
    artifacts: Literal["local", "s3"] = "local"
    serving: Literal["local", "sagemaker"] = "local"
    codehost: Literal["local", "github"] = "local"
    monitor: Literal["local", "cloudwatch"] = "local"


class AwsSettings(Strict):
    """`aws:` of mmm.yaml. Credentials come from boto3's standard chain, never from here."""

    region: str = "us-east-1"  # home region: the default deployment region
    endpoint_url: str | None = None  # one URL for every AWS service (moto, LocalStack)
    role_arn: str | None = None  # execution role of SageMaker models
    bucket_prefix: str = Field(default="mmm", min_length=1, max_length=30)
    table: str = "mmm-state"
    images: dict[str, str] = Field(default_factory=dict)  # library -> container image URI
    # regions listed by `mmm status`/retirement besides the home region and those deployed to
    regions: list[str] = Field(default_factory=list)

    @field_validator("role_arn")
    @classmethod
    def _role_arn(cls, v: str | None) -> str | None:
        if v is not None and not _ROLE_ARN.match(v):
            raise ValueError("expected an IAM role ARN, like arn:aws:iam::123456789012:role/x")
        return v

    @field_validator("bucket_prefix")
    @classmethod
    def _bucket_prefix(cls, v: str) -> str:
        # buckets are <prefix>-<purpose>-<region>: S3's rules for the whole name
        if not re.match(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", v):
            raise ValueError("lower-case letters, digits and '-' only (an S3 bucket name part)")
        return v


class CometSettings(Strict):
    """`backends.registry: comet`: the workspace whose model registry mmm deploys from (the
    key is COMET_API_KEY, never a setting)."""

    workspace: str | None = Field(default=None, min_length=1, max_length=100)


_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")


class GithubSettings(Strict):
    """`backends.codehost: github`: the consuming application's repository (the token is
    GITHUB_TOKEN, never a setting)."""

    repo: str | None = None  # owner/name
    base_url: str | None = (
        None  # API root (GitHub Enterprise: https://HOST/api/v3); null: github.com
    )
    base_branch: str = Field(default="main", min_length=1, max_length=200)
    checks_timeout_s: float = Field(default=3600, gt=0, le=7 * 86_400)
    # The role the golden-test workflow assumes through GitHub's OIDC to read artifacts on
    # S3 (aws-actions/configure-aws-credentials' role-to-assume); null: no AWS step.
    aws_role_arn: str | None = None

    @field_validator("aws_role_arn")
    @classmethod
    def _aws_role_arn(cls, v: str | None) -> str | None:
        if v is not None and not _ROLE_ARN.match(v):
            raise ValueError("expected an IAM role ARN, like arn:aws:iam::123456789012:role/ci")
        return v

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        if v is not None and not _REPO.match(v):
            raise ValueError("expected owner/name, like acme/backend")
        return v

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("expected an http(s) URL, like https://github.example.com/api/v3")
        return v


class SlackSettings(Strict):
    users: dict[str, str] = Field(default_factory=dict)  # Slack user id -> mmm identity
    channel: str | None = None
    # The Slack workspace (its team id, T...) the bot answers: a request signed for the app
    # but made from another workspace (the app installed in two, a shared channel's
    # outside members) is refused. None: any.
    team_id: str | None = Field(default=None, min_length=1, max_length=32)


class Policy(Strict):
    """Who may do what. Empty lists mean "anyone"."""

    allow_self_approval: bool = False
    deployers: list[str] = Field(default_factory=list)
    # approvers per model name or per owner team ("team:<owner>"); "*" applies to all
    approvers: dict[str, list[str]] = Field(default_factory=dict)
    admins: list[str] = Field(default_factory=list)  # may force a retirement


class WorkerSettings(Strict):
    lease_s: float = Field(default=30, gt=0, le=3600)
    poll_s: float = Field(default=0.5, gt=0, le=60)
    max_attempts: int = Field(default=5, ge=1, le=100)  # transient errors, exponential backoff
    backoff_s: float = Field(default=0.5, ge=0, le=3600)


class Settings(Strict):
    backends: Backends = Field(default_factory=Backends)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    comet: CometSettings = Field(default_factory=CometSettings)
    github: GithubSettings = Field(default_factory=GithubSettings)
    defaults: dict[str, Any] = Field(default_factory=dict)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    policy: Policy = Field(default_factory=Policy)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)


# ---------------------------------------------------------------- parsing


def _format_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
    # discriminated unions put the tag in the path: drop it so the key reads as written
    for kind in StrategyKind:
        loc = loc.replace(f".{kind.value}", "")
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    msg = msg.removeprefix("Value error, ")
    extra = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {loc or '(top level)'}: {msg}{extra}"


MAX_FILE_BYTES = 1024 * 1024  # a deployment or settings file is a few hundred bytes
MAX_DEPTH = 20  # the deepest key path of either file is 3


class _TooDeep(Exception):
    pass


class _StrictLoader(yaml.SafeLoader):
    """safe_load, but a key given twice in one mapping is an error, not "the last one wins",
    and nesting stops at MAX_DEPTH as it is read."""

    _level = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # Refused at the first node too deep, before the reader goes on: its cost grows with
        # the square of the brackets left open. Aliases are measured once composed (_depth).
        self._level += 1
        try:
            if self._level > MAX_DEPTH:
                raise _TooDeep
            return super().compose_node(parent, index)
        finally:
            self._level -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # "<<" merge keys first
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            if isinstance(exc, yaml.YAMLError):
                raise
            # A tag's constructor on a value it cannot hold: `!!int abc`, `!!bool maybe`,
            # `!!timestamp 2001-13-45`, an int of more digits than Python converts.
            raise yaml.constructor.ConstructorError(
                None, None, _unreadable(node.tag, exc), node.start_mark
            ) from None


def _unreadable(tag: str | None, exc: Exception) -> str:
    what = f"a value tagged {tag.replace('tag:yaml.org,2002:', '!!')}" if tag else "a value"
    return f"{what} cannot be read: {str(exc).split(';')[0]}"


def _depth(node: yaml.Node) -> int:
    depth, level = 0, [node]
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return depth
        # Each node once per level: aliases make a graph whose paths grow exponentially
        # (a "billion laughs" of a few hundred bytes), its nodes only linearly.
        children: dict[int, yaml.Node] = {}
        for n in level:
            if isinstance(n, yaml.MappingNode):
                children.update((id(part), part) for pair in n.value for part in pair)
            elif isinstance(n, yaml.SequenceNode):
                children.update((id(part), part) for part in n.value)
        level = list(children.values())
    return depth


def _not_utf8(node: yaml.Node) -> yaml.Node | None:
    """The first scalar whose text cannot be UTF-8: YAML's escapes can write lone surrogates
    ("\\ud800"), which no record, log or file of mmm could then hold. Each node once."""
    seen: set[int] = set()
    todo = [node]
    while todo:
        n = todo.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.ScalarNode):
            try:
                n.value.encode("utf-8")
            except UnicodeEncodeError:
                return n
        elif isinstance(n, yaml.MappingNode):
            todo += [part for pair in n.value for part in pair]
        elif isinstance(n, yaml.SequenceNode):
            todo += n.value
    return None


def load_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None and _depth(node) > MAX_DEPTH:
                raise SpecError(f"{source}: nested deeper than {MAX_DEPTH} levels")
            bad = None if node is None else _not_utf8(node)
            if bad is not None:
                raise SpecError(
                    f"{source}: line {bad.start_mark.line + 1}: not UTF-8 text "
                    "(an escape writes a lone surrogate)"
                )
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or " ")
        raise SpecError(
            f"{source}: line {line}: not valid YAML (character U+{code:04X} is not allowed)"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise SpecError(
            f"{source}: {where}not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    except _TooDeep:
        raise SpecError(f"{source}: nested deeper than {MAX_DEPTH} levels") from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply to read") from None
    except SpecError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        # what a tag constructs after its first step (`!!set [1]`): no line to name
        raise SpecError(f"{source}: not valid YAML ({_unreadable(None, exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: (top level): expected a mapping of keys, got {type(data).__name__}"
        )
    return data


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two mappings; `over` wins, lists are replaced, not appended."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_deployment(data: dict[str, Any], source: str = "deployment") -> DeploymentSpec:
    try:
        return DeploymentSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_format_error(source, err)) from None


def read_text_file(path: Path) -> str:
    """A small UTF-8 text file; a device, a FIFO, a huge or binary file is refused, not read."""
    try:
        if not path.is_file():
            what = "no such file" if not path.exists() else "not a regular file"
            raise SpecError(f"{path}: {what}")
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text") from None
    if "\x00" in text:
        raise SpecError(f"{path}: not a text file (it holds NUL bytes)")
    return text


def read_deployment_file(path: Path) -> dict[str, Any]:
    data = load_yaml(read_text_file(path), str(path))
    parse_deployment(data, str(path))  # validate the file on its own first
    return data


def parse_settings(data: dict[str, Any], source: str = "mmm.yaml") -> Settings:
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise SpecError(f"{source}: defaults: expected a mapping of deployment file keys")
    parse_deployment(defaults, f"{source}: defaults")  # unknown keys or bad values
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        raise SpecError(_format_error(source, err)) from None


def deployment_schema() -> dict[str, Any]:
    schema = DeploymentSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mmm deployment file"
    return schema
