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


def _rollout(steps: list[int], bake_s: float, gates: set[Gate]) -> list[Step]:
    out: list[Step] = []
    for i, percent in enumerate(steps):
        out.append(
            Step(
                name=f"shift:{percent}",
                stage=Stage.ROLLOUT,
                action=Action.SHIFT_TRAFFIC,
                args={"percent": percent},
            )
        )
        if bake_s > 0:
            out.append(
                Step(
                    name=f"bake:{percent}",
                    stage=Stage.ROLLOUT,
                    action=Action.BAKE,
                    args={"seconds": bake_s, "percent": percent},
                )
            )
        if Gate.BETWEEN_STEPS in gates and i < len(steps) - 1:
            out.append(_gate(Gate.BETWEEN_STEPS, Stage.ROLLOUT, f":{percent}"))
    return out


def deploy_plan(spec: DeploymentSpec, golden_on_endpoint: bool = False) -> list[Step]:
    """`golden_on_endpoint`: the model is one only its serving container loads, so its golden
    data is checked against the candidate variant once provisioned, before traffic shifts."""
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
        Step(name="create_variant", stage=s.PROVISION, action=Action.CREATE_VARIANT),
        Step(name="create_alarms", stage=s.PROVISION, action=Action.CREATE_ALARMS),
    ]
    if golden_on_endpoint:
        plan.append(Step(name="check_golden", stage=s.PROVISION, action=Action.CHECK_GOLDEN))
    if Gate.BEFORE_ROLLOUT in gates:
        plan.append(_gate(Gate.BEFORE_ROLLOUT, s.ROLLOUT))
    strategy = spec.strategy
    if isinstance(strategy, AllAtOnce):
        plan += _rollout([100], strategy.bake_s, gates)
    elif isinstance(strategy, BlueGreen):
        plan += _rollout(strategy.steps, strategy.bake_s, gates)
    elif isinstance(strategy, Shadow):
        plan += [
            Step(name="start_shadow", stage=s.ROLLOUT, action=Action.START_SHADOW),
            Step(name="collect", stage=s.ROLLOUT, action=Action.COLLECT),
            Step(name="analyze", stage=s.ROLLOUT, action=Action.ANALYZE),
            Step(name="stop_shadow", stage=s.ROLLOUT, action=Action.STOP_SHADOW),
        ]
        if not strategy.auto_approve or Gate.BEFORE_PROMOTE in gates:
            plan.append(_gate(Gate.BEFORE_PROMOTE, s.ROLLOUT))
        if strategy.then is StrategyKind.BLUE_GREEN:
            plan += _rollout(strategy.steps, strategy.bake_s, gates)
        else:
            plan += _rollout([100], 0, gates)
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
