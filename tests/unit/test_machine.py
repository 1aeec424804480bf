"""decide(): every strategy and gate placement, abort, rollback, retirement; no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain import Command, Deployment, DeploymentState, Kind, Phase, StepProgress, iso
from core.machine import (
    Abort,
    Approve,
    Failed,
    InvalidTransition,
    Start,
    Succeeded,
    Waiting,
    decide,
    plan_of,
)
from core.plan import Action
from core.spec import Gate, parse_deployment

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# Actions whose success changes the world, and so must be undone by abort.
CREATES = {
    Action.OPEN_CHANGE,
    Action.MERGE_CHANGE,
    Action.COPY_ARTIFACT,
    Action.SET_STATUS,
    Action.CREATE_VARIANT,
    Action.SHIFT_TRAFFIC,
    Action.START_SHADOW,
    Action.STOP_SHADOW,
    Action.DRAIN_OLD,
    Action.CREATE_ALARMS,
    Action.REMOVE_TRAFFIC,
    Action.REMOVE_ALARMS,
    Action.REMOVE_CODE,
    Action.TRASH_ARTIFACTS,
}


def result_for(cmd: Command, verdict: str = "pass", fired: bool = False) -> dict[str, Any]:
    """What a successful adapter would report for `cmd`."""
    action = Action(cmd.action)
    if action is Action.RUN_CHECKS:
        return {"passed": True, "summary": "2 passed"}
    if action is Action.BAKE:
        alarm = {
            "name": "a",
            "metric": "error_rate",
            "value": 0.5,
            "threshold": 0.05,
            "firing": True,
        }
        return {"fired": [alarm] if fired else []}
    if action is Action.ANALYZE:
        return {
            "analysis": {
                "verdict": verdict,
                "samples": 10,
                "summary": verdict,
                "needed_samples": 100,
            }
        }
    if action in (Action.OPEN_CHANGE, Action.MERGE_CHANGE, Action.REMOVE_CODE):
        return {"change": {"id": cmd.key, "url": "u", "head": "h"}}
    if action is Action.COPY_ARTIFACT:
        return {"uri": f"local://production/{cmd.key}", "created": True}
    if action is Action.SET_STATUS:
        return {"previous": {"1": "registered"}}
    if action in (Action.CREATE_ALARMS, Action.REMOVE_ALARMS):
        key = "alarms" if action is Action.CREATE_ALARMS else "removed"
        return {key: [{"names": ["x"], "region": "local"}]}
    if action is Action.TRASH_ARTIFACTS:
        return {"moves": [{"from": "a", "to": "b"}]}
    if action in CREATES:
        return {"changes": [{"name": "e", "region": "local", "read": None, "wrote": {}}]}
    return {}


def make(spec: dict[str, Any] | None = None, kind: Kind = Kind.DEPLOY) -> Deployment:
    parsed = parse_deployment({"endpoint": "churn", **(spec or {})})
    return Deployment(
        id="dep-1",
        kind=kind,
        model="churn",
        version=1,
        endpoint="churn",
        regions=["local"],
        spec=parsed,
        requested_by="alice",
        created_at=iso(T0),
        updated_at=iso(T0),
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run_until_blocked(
    d: Deployment, verdict: str = "pass", fire_at: str | None = None
) -> tuple[Deployment, list[str]]:
    """Succeed every command in turn until the deployment ends or waits at a gate."""
    steps: list[str] = []
    if d.state is DeploymentState.QUEUED:
        d, cmds = decide(d, Start(at=at(0)))
    else:
        cmds = list(d.pending)
    n = 1
    while cmds:
        cmd = cmds[0]
        steps.append(cmd.key.split("/", 2)[-1])
        fired = fire_at is not None and steps[-1] == fire_at
        d, cmds = decide(
            d, Succeeded(at=at(n), command=cmd, result=result_for(cmd, verdict, fired))
        )
        n += 1
    return d, steps


FORWARD = [
    "validate",
    "open_change",
    "run_checks",
    "merge_change",
    "copy_artifact",
    "mark_staging",
    "create_variant",
    "create_alarms",
]


def test_all_at_once_runs_every_stage_in_order() -> None:
    d, steps = run_until_blocked(make())
    assert d.state is DeploymentState.SUCCEEDED
    assert steps == [*FORWARD, "shift:100", "drain_old", "mark_production"]
    assert [e.type for e in d.events][-1] == "finished"


def test_blue_green_steps_and_bakes() -> None:
    d, steps = run_until_blocked(
        make({"strategy": {"kind": "blue-green", "steps": [10, 50, 100], "bake_s": 5}})
    )
    assert d.state is DeploymentState.SUCCEEDED
    assert steps[len(FORWARD) :] == [
        "shift:10",
        "bake:10",
        "shift:50",
        "bake:50",
        "shift:100",
        "bake:100",
        "drain_old",
        "mark_production",
    ]


@pytest.mark.parametrize("gate", list(Gate))
@pytest.mark.parametrize("strategy", ["all-at-once", "blue-green", "shadow"])
def test_every_gate_stops_until_approved(gate: Gate, strategy: str) -> None:
    spec: dict[str, Any] = {"gates": [gate.value], "strategy": {"kind": strategy}}
    if strategy == "shadow":
        spec["strategy"]["auto_approve"] = True
    if strategy == "blue-green":
        spec["strategy"]["bake_s"] = 0
    d = make(spec)
    names = [s.name for s in plan_of(d)]
    applies = any(n.startswith(f"gate:{gate.value}") for n in names)
    d, _ = run_until_blocked(d)
    if not applies:
        # e.g. before_promote on a strategy without promotion: the plan has no such gate
        assert d.state is DeploymentState.SUCCEEDED
        return
    approvals = 0
    while d.state is DeploymentState.WAITING_APPROVAL:
        assert d.waiting_at == gate.value
        assert d.pending == []
        d, _cmds = decide(d, Approve(at=at(100), by="bob"))
        approvals += 1
        d, _ = run_until_blocked(d)
    assert d.state is DeploymentState.SUCCEEDED
    assert approvals == sum(1 for n in names if n.startswith(f"gate:{gate.value}"))
    assert all(a.by == "bob" and a.gate == gate.value for a in d.approvals)


def test_shadow_pass_with_auto_approve_promotes_without_a_person() -> None:
    d, steps = run_until_blocked(make({"strategy": {"kind": "shadow", "auto_approve": True}}))
    assert d.state is DeploymentState.SUCCEEDED
    assert steps[len(FORWARD) :] == [
        "start_shadow",
        "collect",
        "analyze",
        "stop_shadow",
        "shift:100",
        "drain_old",
        "mark_production",
    ]
    assert d.analysis is not None and d.analysis["verdict"] == "pass"


def test_shadow_pass_without_auto_approve_waits_before_promote() -> None:
    d, _ = run_until_blocked(make({"strategy": {"kind": "shadow"}}))
    assert d.state is DeploymentState.WAITING_APPROVAL
    assert d.waiting_at == "before_promote"


def test_shadow_fail_rolls_back_everything() -> None:
    d, _ = run_until_blocked(
        make({"strategy": {"kind": "shadow", "auto_approve": True}}), verdict="fail"
    )
    assert d.state is DeploymentState.ROLLED_BACK
    assert all(e.undone for e in d.journal if e.undo is not None)
    assert "shadow analysis failed" in (d.error or "")


def test_shadow_inconclusive_collects_more_then_waits_at_deadline() -> None:
    d = make({"strategy": {"kind": "shadow", "auto_approve": True, "max_wait_s": 50}})
    d, cmds = decide(d, Start(at=at(0)))
    t = 1.0
    collects = 0
    while cmds:
        cmd = cmds[0]
        if Action(cmd.action) is Action.COLLECT:
            collects += 1
        t += 10
        d, cmds = decide(
            d, Succeeded(at=at(t), command=cmd, result=result_for(cmd, "inconclusive"))
        )
    assert collects >= 2  # collected again after the first inconclusive verdict
    assert d.state is DeploymentState.WAITING_APPROVAL and d.waiting_at == "before_promote"
    assert d.context.min_samples == 100


def test_inconclusive_on_replayed_traffic_waits_for_a_person_at_once() -> None:
    d = make(
        {"strategy": {"kind": "shadow", "auto_approve": True, "traffic": {"replay": "in.jsonl"}}}
    )
    d, cmds = decide(d, Start(at=at(0)))
    analyses = 0
    while cmds:
        analyses += Action(cmds[0].action) is Action.ANALYZE
        d, cmds = decide(
            d, Succeeded(at=at(1), command=cmds[0], result=result_for(cmds[0], "inconclusive"))
        )
    assert analyses == 1
    assert d.state is DeploymentState.WAITING_APPROVAL and d.waiting_at == "before_promote"


def test_alarm_during_bake_rolls_back() -> None:
    d, _ = run_until_blocked(
        make({"strategy": {"kind": "blue-green", "steps": [20, 100], "bake_s": 5}}),
        fire_at="bake:20",
    )
    assert d.state is DeploymentState.ROLLED_BACK
    assert "alarm a fired" in (d.error or "")
    assert any(e.type == "alarm" for e in d.events)


def test_failed_checks_undo_and_fail() -> None:
    d, cmds = decide(make(), Start(at=at(0)))
    while Action(cmds[0].action) is not Action.RUN_CHECKS:
        d, cmds = decide(d, Succeeded(at=at(1), command=cmds[0], result=result_for(cmds[0])))
    d, cmds = decide(
        d, Succeeded(at=at(2), command=cmds[0], result={"passed": False, "summary": "1 failed"})
    )
    assert d.phase is Phase.COMPENSATING
    assert [Action(c.action) for c in cmds] == [Action.REVERT_CHANGE]
    d, cmds = decide(d, Succeeded(at=at(3), command=cmds[0], result={}))
    assert d.state is DeploymentState.FAILED and cmds == []
    assert "golden-data checks failed" in (d.error or "")


def test_a_failed_step_undoes_in_reverse_order() -> None:
    d, cmds = decide(make(), Start(at=at(0)))
    done: list[str] = []
    while Action(cmds[0].action) is not Action.CREATE_ALARMS:
        done.append(cmds[0].action)
        d, cmds = decide(d, Succeeded(at=at(1), command=cmds[0], result=result_for(cmds[0])))
    d, cmds = decide(d, Failed(at=at(2), command=cmds[0], error="quota exceeded"))
    undone = []
    while cmds:
        undone.append(cmds[0].key.removesuffix("/undo").split("/", 2)[-1])
        d, cmds = decide(d, Succeeded(at=at(3), command=cmds[0], result={}))
    assert undone == [
        "create_variant",
        "mark_staging",
        "copy_artifact",
        "merge_change",
        "open_change",
    ]
    assert d.state is DeploymentState.FAILED
    assert d.error == "create_alarms: quota exceeded"


def test_failed_undo_ends_failed_and_says_what_is_left() -> None:
    d, cmds = decide(make(), Start(at=at(0)))
    while Action(cmds[0].action) is not Action.CREATE_ALARMS:
        d, cmds = decide(d, Succeeded(at=at(1), command=cmds[0], result=result_for(cmds[0])))
    d, cmds = decide(d, Abort(at=at(2), by="alice"))  # in flight: wait for its result
    assert cmds and Action(cmds[0].action) is Action.CREATE_ALARMS
    d, cmds = decide(d, Succeeded(at=at(3), command=cmds[0], result=result_for(cmds[0])))
    assert Action(cmds[0].action) is Action.DELETE_ALARMS  # the late result is undone first
    d, cmds = decide(d, Failed(at=at(4), command=cmds[0], error="denied"))
    assert d.state is DeploymentState.FAILED and cmds == []
    assert "still to undo by hand" in (d.error or "") and "create_alarms" in (d.error or "")


def test_waiting_sets_wake_time_and_keeps_the_command() -> None:
    d, cmds = decide(
        make({"strategy": {"kind": "blue-green", "steps": [100], "bake_s": 60}}), Start(at=at(0))
    )
    while Action(cmds[0].action) is not Action.BAKE:
        d, cmds = decide(d, Succeeded(at=at(1), command=cmds[0], result=result_for(cmds[0])))
    d2, cmds2 = decide(
        d,
        Waiting(at=at(2), command=cmds[0], until=at(7), progress=StepProgress(started=iso(at(2)))),
    )
    assert d2.wake_at == iso(at(7)) and cmds2 == cmds
    assert d2.context.progress["bake:100"].started == iso(at(2))


def test_duplicate_results_change_nothing() -> None:
    d, cmds = decide(make(), Start(at=at(0)))
    ev = Succeeded(at=at(1), command=cmds[0], result=result_for(cmds[0]))
    d1, next1 = decide(d, ev)
    d2, next2 = decide(d1, ev)
    assert d2.model_dump() == d1.model_dump() and next2 == next1


def test_invalid_transitions_are_refused() -> None:
    d = make()
    with pytest.raises(InvalidTransition):
        decide(d, Approve(at=at(0), by="bob"))
    d, _ = run_until_blocked(d)
    with pytest.raises(InvalidTransition):
        decide(d, Abort(at=at(0), by="bob"))
    with pytest.raises(InvalidTransition):
        decide(d, Start(at=at(0)))


def test_abort_while_queued_ends_at_once() -> None:
    d, cmds = decide(make(), Abort(at=at(0), by="alice", reason="typo"))
    assert d.state is DeploymentState.ABORTED and cmds == []


def test_approve_names_the_wrong_gate() -> None:
    d, _ = run_until_blocked(make({"gates": ["before_rollout"]}))
    with pytest.raises(InvalidTransition, match="before_rollout"):
        decide(d, Approve(at=at(0), by="bob", gate="before_merge"))


def test_a_late_approval_never_passes_a_later_gate_of_the_same_name() -> None:
    bg = {"kind": "blue-green", "steps": [10, 50, 100], "bake_s": 0}
    d, _ = run_until_blocked(make({"strategy": bg, "gates": ["between_steps"]}))
    assert d.waiting_at == "between_steps" and d.approvals == []
    d, _ = decide(d, Approve(at=at(0), by="bob", gate="between_steps", seen=0))
    d, _ = run_until_blocked(d)
    assert d.waiting_at == "between_steps"  # the next step's gate
    with pytest.raises(InvalidTransition, match="passed already"):
        decide(d, Approve(at=at(1), by="carol", gate="between_steps", seen=0))
    d, _ = decide(d, Approve(at=at(1), by="carol", gate="between_steps", seen=1))
    assert [a.by for a in d.approvals] == ["bob", "carol"]


def test_retirement_plan_runs_and_undoes() -> None:
    d, steps = run_until_blocked(make(kind=Kind.RETIRE))
    assert d.state is DeploymentState.SUCCEEDED
    assert steps == [
        "scan_usage",
        "remove_traffic",
        "remove_alarms",
        "remove_code",
        "trash_artifacts",
        "mark_retired",
        "purge_trash",
    ]
    d = make(kind=Kind.RETIRE)
    d, cmds = decide(d, Start(at=at(0)))
    for _ in range(4):
        d, cmds = decide(d, Succeeded(at=at(1), command=cmds[0], result=result_for(cmds[0])))
    d, cmds = decide(d, Abort(at=at(2), by="alice"))
    d, cmds = decide(d, Succeeded(at=at(3), command=cmds[0], result=result_for(cmds[0])))
    while cmds:
        d, cmds = decide(d, Succeeded(at=at(4), command=cmds[0], result={}))
    assert d.state is DeploymentState.ABORTED
    assert all(e.undone for e in d.journal if e.undo is not None)


# ---------------------------------------------------------------- property: any sequence of events

SPECS = [
    {},
    {"gates": ["before_merge", "before_rollout", "before_finalize"]},
    {
        "strategy": {"kind": "blue-green", "steps": [25, 100], "bake_s": 1},
        "gates": ["between_steps"],
    },
    {"strategy": {"kind": "shadow", "auto_approve": True, "max_wait_s": 5}},
    {"strategy": {"kind": "shadow", "then": "blue-green", "steps": [50, 100], "bake_s": 1}},
]

moves = st.lists(
    st.sampled_from(["ok", "ok", "ok", "ok", "fail", "wait", "approve", "abort", "fire", "flip"]),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    retire=st.booleans(),
    script=moves,
    verdicts=st.lists(st.sampled_from(["pass", "fail", "inconclusive"]), min_size=1, max_size=5),
)
def test_any_sequence_keeps_the_record_valid_and_abort_undoes_everything(
    spec: dict[str, Any], retire: bool, script: list[str], verdicts: list[str]
) -> None:
    d = make(spec, Kind.RETIRE if retire else Kind.DEPLOY)
    d, cmds = decide(d, Start(at=at(0)))
    world: set[str] = set()  # forward commands whose change is still in place
    t = 1.0

    def feed(ev: Any) -> None:
        nonlocal d, cmds
        d, cmds = decide(d, ev)
        Deployment.model_validate_json(d.model_dump_json())  # always a valid record

    def succeed(cmd: Command, fired: bool = False) -> None:
        action = Action(cmd.action)
        if action in CREATES and not cmd.key.endswith("/undo"):
            world.add(cmd.key)
        if cmd.key.endswith("/undo"):
            world.discard(cmd.key.removesuffix("/undo"))
        verdict = verdicts[int(t) % len(verdicts)]
        feed(Succeeded(at=at(t), command=cmd, result=result_for(cmd, verdict, fired)))

    for move in script:
        t += 1
        if d.state.terminal:
            break
        try:
            if move in ("ok", "fire", "flip") and cmds:
                succeed(cmds[0], fired=move == "fire")
            elif move == "fail" and cmds:
                feed(Failed(at=at(t), command=cmds[0], error="boom"))
            elif move == "wait" and cmds:
                feed(Waiting(at=at(t), command=cmds[0], until=at(t + 1)))
            elif move == "approve" and d.state is DeploymentState.WAITING_APPROVAL:
                feed(Approve(at=at(t), by="bob"))
            elif move == "abort":
                feed(Abort(at=at(t), by="alice"))
        except InvalidTransition:
            assert d.state.terminal or d.phase is Phase.COMPENSATING
    if (
        d.state is DeploymentState.FAILED
        and d.phase is Phase.COMPENSATING
        and d.stage.value == "undo"
        and "by hand" in (d.error or "")
    ):
        return  # an undo failed: the record says what is left, nothing more can run
    if not d.state.terminal:
        if d.phase is Phase.FORWARD:
            feed(Abort(at=at(t), by="alice"))
        while cmds:
            t += 1
            succeed(cmds[0])
        assert d.state in (
            DeploymentState.ABORTED,
            DeploymentState.ROLLED_BACK,
            DeploymentState.FAILED,
        )
        if d.end_reason is not None and d.end_reason.value == "aborted":
            assert d.state is DeploymentState.ABORTED
    if d.state is not DeploymentState.SUCCEEDED:
        assert world == set(), f"left in place: {world}"
        assert all(e.undone for e in d.journal if e.undo is not None)
    assert d.pending == []
