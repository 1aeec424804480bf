"""The steps of a deployment or a retirement, derived once from its spec.

A plan is typed data (like Argo Rollouts' steps): the machine walks it, the
steps (core.steps) carry out each action. Which steps exist depends only on the
strategy, the gates and the model's library, so the plan is fixed when the deployment
is created.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.domain import Stage
from core.spec import AllAtOnce, BlueGreen, DeploymentSpec, Gate, Shadow, StrategyKind


class Action(StrEnum):
    # deploy, forward
    VALIDATE = "validate"
    OPEN_CHANGE = "open_change"
    RUN_CHECKS = "run_checks"
    MERGE_CHANGE = "merge_change"
    COPY_ARTIFACT = "copy_artifact"
    SET_STATUS = "set_status"
    CREATE_VARIANT = "create_variant"
    CREATE_ALARMS = "create_alarms"
    CHECK_GOLDEN = "check_golden"
    SHIFT_TRAFFIC = "shift_traffic"
    BAKE = "bake"
    START_SHADOW = "start_shadow"
    COLLECT = "collect"
    ANALYZE = "analyze"
    STOP_SHADOW = "stop_shadow"
    DRAIN_OLD = "drain_old"
    GATE = "gate"
    # retire, forward
    SCAN_USAGE = "scan_usage"
    REMOVE_TRAFFIC = "remove_traffic"
    REMOVE_ALARMS = "remove_alarms"
    REMOVE_CODE = "remove_code"
    TRASH_ARTIFACTS = "trash_artifacts"
    PURGE_TRASH = "purge_trash"
    # undo
    REVERT_CHANGE = "revert_change"
    DELETE_ARTIFACT = "delete_artifact"
    DELETE_STAGED = "delete_staged"
    RESTORE_ENDPOINTS = "restore_endpoints"
    DELETE_ALARMS = "delete_alarms"
    RESTORE_ALARMS = "restore_alarms"
    RESTORE_ARTIFACTS = "restore_artifacts"


class Step(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # unique within the plan: "shift:50", "gate:before_rollout"
    stage: Stage
    action: Action
    args: dict[str, Any] = Field(default_factory=dict)

    @property
    def gate(self) -> Gate | None:
        return Gate(self.args["gate"]) if self.action is Action.GATE else None


def _gate(gate: Gate, stage: Stage, suffix: str = "") -> Step:
    name = f"gate:{gate.value}{suffix}"
    return Step(name=name, stage=stage, action=Action.GATE, args={"gate": gate.value})


def _at(region: str | None) -> tuple[str, dict[str, Any]]:
    """A step's name suffix and args when it acts in one region of several."""
    return (f"@{region}", {"region": region}) if region else ("", {})


def _rollout(
    steps: list[int], bake_s: float, gates: set[Gate], region: str | None = None
) -> list[Step]:
    out: list[Step] = []
    suffix, _ = _at(region)
    for i, percent in enumerate(steps):
        out += _shift(percent, bake_s, region)
        if Gate.BETWEEN_STEPS in gates and i < len(steps) - 1:
            out.append(_gate(Gate.BETWEEN_STEPS, Stage.ROLLOUT, f":{percent}{suffix}"))
    return out


def _shift(percent: int, bake_s: float, region: str | None) -> list[Step]:
    suffix, where = _at(region)
    out = [
        Step(
            name=f"shift:{percent}{suffix}",
            stage=Stage.ROLLOUT,
            action=Action.SHIFT_TRAFFIC,
            args={"percent": percent, **where},
        )
    ]
    if bake_s > 0:
        out.append(
            Step(
                name=f"bake:{percent}{suffix}",
                stage=Stage.ROLLOUT,
                action=Action.BAKE,
                args={"seconds": bake_s, "percent": percent, **where},
            )
        )
    return out


def _waved(spec: DeploymentSpec, steps: list[int], bake_s: float, gates: set[Gate]) -> list[Step]:
    """The traffic steps in every region: one region's after another's (`waves: region`), or
    each step in every region before the next step (`waves: step`)."""
    regions: list[str | None] = list(spec.regions) if len(spec.regions) > 1 else [None]
    if spec.waves == "region":
        return [s for r in regions for s in _rollout(steps, bake_s, gates, r)]
    out: list[Step] = []
    for i, percent in enumerate(steps):
        for region in regions:
            out += _shift(percent, bake_s, region)
        if Gate.BETWEEN_STEPS in gates and i < len(steps) - 1:
            out.append(_gate(Gate.BETWEEN_STEPS, Stage.ROLLOUT, f":{percent}"))
    return out


def _provision(region: str | None, golden_on_endpoint: bool) -> list[Step]:
    """The candidate made to serve in `region` (None: in the deployment's only region)."""
    suffix, where = _at(region)
    s = Stage.PROVISION
    out = [
        Step(name=f"create_variant{suffix}", stage=s, action=Action.CREATE_VARIANT, args=where),
        Step(name=f"create_alarms{suffix}", stage=s, action=Action.CREATE_ALARMS, args=where),
    ]
    if golden_on_endpoint:
        out.append(
            Step(name=f"check_golden{suffix}", stage=s, action=Action.CHECK_GOLDEN, args=where)
        )
    return out


def deploy_plan(spec: DeploymentSpec, golden_on_endpoint: bool = False) -> list[Step]:
    """`golden_on_endpoint`: the model is one only its serving container loads, so its golden
    data is checked against the candidate variant once provisioned, before traffic shifts.

    With several regions, provisioning and traffic steps act in one region each, in the
    order of `spec.regions` (see `waves`); code, checks, the artifact's copy and the
    registry happen once."""
    gates = set(spec.gates)
    s = Stage
    plan: list[Step] = [
        Step(name="validate", stage=s.VALIDATE, action=Action.VALIDATE),
        Step(name="open_change", stage=s.CODEGEN, action=Action.OPEN_CHANGE),
        Step(name="run_checks", stage=s.VERIFY, action=Action.RUN_CHECKS),
    ]
    if Gate.BEFORE_MERGE in gates:
        plan.append(_gate(Gate.BEFORE_MERGE, s.MERGE))
    plan.append(Step(name="merge_change", stage=s.MERGE, action=Action.MERGE_CHANGE))
    if Gate.BEFORE_PROVISION in gates:
        plan.append(_gate(Gate.BEFORE_PROVISION, s.PROVISION))
    plan += [
        Step(name="copy_artifact", stage=s.PROVISION, action=Action.COPY_ARTIFACT),
        Step(
            name="mark_staging",
            stage=s.PROVISION,
            action=Action.SET_STATUS,
            args={"status": "staging"},
        ),
    ]
    regions: list[str | None] = list(spec.regions) if len(spec.regions) > 1 else [None]
    strategy = spec.strategy
    waved = spec.waves == "region" and not isinstance(strategy, Shadow)
    if waved:  # each region whole before the next: provisioned, then its traffic steps
        steps, bake_s = _steps_of(spec)
        for i, region in enumerate(regions):
            plan += _provision(region, golden_on_endpoint)
            if i == 0 and Gate.BEFORE_ROLLOUT in gates:
                plan.append(_gate(Gate.BEFORE_ROLLOUT, s.ROLLOUT))
            plan += _rollout(steps, bake_s, gates, region)
    else:
        for region in regions:
            plan += _provision(region, golden_on_endpoint)
        if Gate.BEFORE_ROLLOUT in gates:
            plan.append(_gate(Gate.BEFORE_ROLLOUT, s.ROLLOUT))
        if isinstance(strategy, Shadow):
            # one shadow test across every region, then the promotion in waves
            plan += [
                Step(name="start_shadow", stage=s.ROLLOUT, action=Action.START_SHADOW),
                Step(name="collect", stage=s.ROLLOUT, action=Action.COLLECT),
                Step(name="analyze", stage=s.ROLLOUT, action=Action.ANALYZE),
                Step(name="stop_shadow", stage=s.ROLLOUT, action=Action.STOP_SHADOW),
            ]
            if not strategy.auto_approve or Gate.BEFORE_PROMOTE in gates:
                plan.append(_gate(Gate.BEFORE_PROMOTE, s.ROLLOUT))
        steps, bake_s = _steps_of(spec)
        plan += _waved(spec, steps, bake_s, gates)
    if Gate.BEFORE_FINALIZE in gates:
        plan.append(_gate(Gate.BEFORE_FINALIZE, s.FINALIZE))
    plan += [
        Step(name="drain_old", stage=s.FINALIZE, action=Action.DRAIN_OLD),
        Step(
            name="mark_production",
            stage=s.FINALIZE,
            action=Action.SET_STATUS,
            args={"status": "production"},
        ),
    ]
    return plan


def _steps_of(spec: DeploymentSpec) -> tuple[list[int], float]:
    """The traffic steps and bake of the strategy's rollout (a shadow's promotion)."""
    strategy = spec.strategy
    if isinstance(strategy, BlueGreen):
        return strategy.steps, strategy.bake_s
    if isinstance(strategy, Shadow):
        if strategy.then is StrategyKind.BLUE_GREEN:
            return strategy.steps, strategy.bake_s
        return [100], 0
    assert isinstance(strategy, AllAtOnce)
    return [100], strategy.bake_s


def retire_plan() -> list[Step]:
    s = Stage.RETIRE
    return [
        Step(name="scan_usage", stage=Stage.VALIDATE, action=Action.SCAN_USAGE),
        Step(name="remove_traffic", stage=s, action=Action.REMOVE_TRAFFIC),
        Step(name="remove_alarms", stage=s, action=Action.REMOVE_ALARMS),
        Step(name="remove_code", stage=s, action=Action.REMOVE_CODE),
        Step(name="trash_artifacts", stage=s, action=Action.TRASH_ARTIFACTS),
        Step(name="mark_retired", stage=s, action=Action.SET_STATUS, args={"status": "retired"}),
        Step(name="purge_trash", stage=Stage.FINALIZE, action=Action.PURGE_TRASH),
    ]
