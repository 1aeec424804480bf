"""Typed events and facts: each event dumps to the dict saved before they were typed, records
saved then still load (and save back unchanged), and each event has one text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from core.domain import Command, Deployment, DeploymentState, Facts, StepProgress, iso
from core.events import DeploymentEvent, OtherEvent
from core.machine import Start, Succeeded, decide
from core.spec import Gate, parse_deployment
from core.store import load_record

AT = "2026-01-01T10:20:30.000Z"
EVENTS: TypeAdapter[DeploymentEvent] = TypeAdapter(DeploymentEvent)

# Every kind as the code before typed events saved it, with its line and tone.
TODAY: list[tuple[dict[str, Any], str, str, bool]] = [
    ({"at": AT, "type": "created", "by": "alice"}, "new   requested by alice", "info", True),
    ({"at": AT, "type": "started"}, "go    started", "info", True),
    (
        {"at": AT, "type": "step_started", "step": "validate", "stage": "validate"},
        "run   validate         (validate)",
        "info",
        True,
    ),
    (
        {"at": AT, "type": "step_succeeded", "step": "validate", "summary": "churn v1 loads"},
        "ok    validate         churn v1 loads",
        "ok",
        False,
    ),
    ({"at": AT, "type": "step_succeeded", "step": "shift:10"}, "ok    shift:10", "ok", False),
    (
        {"at": AT, "type": "step_failed", "step": "merge_change", "error": "conflict"},
        "FAIL  merge_change     conflict",
        "fail",
        False,
    ),
    (
        {"at": AT, "type": "waiting_approval", "gate": "before_promote"},
        "WAIT  gate before_promote: needs an approval",
        "wait",
        False,
    ),
    (
        {"at": AT, "type": "approved", "by": "bob", "gate": "before_promote"},
        "ok    approved by bob at gate before_promote",
        "ok",
        False,
    ),
    (
        {"at": AT, "type": "abort_requested", "by": "bob", "reason": ""},
        "ABORT requested by bob",
        "abort",
        False,
    ),
    (
        {"at": AT, "type": "abort_requested", "by": "bob", "reason": "typo"},
        "ABORT requested by bob typo",
        "abort",
        False,
    ),
    (
        {
            "at": AT,
            "type": "alarm",
            "name": "mmm-churn-v2-errors",
            "metric": "error_rate",
            "value": 0.25,
            "threshold": 0.05,
            "firing": True,
        },
        "ALARM mmm-churn-v2-errors: error_rate 0.25 > 0.05",
        "fail",
        False,
    ),
    (
        {"at": AT, "type": "analysis", "verdict": "pass", "summary": "equivalent"},
        "ok    analysis         equivalent",
        "ok",
        False,
    ),
    (
        {"at": AT, "type": "analysis", "verdict": None, "summary": ""},
        "ok    analysis",
        "ok",
        False,
    ),
    (
        {"at": AT, "type": "undo_started", "reason": "aborted", "message": "aborted by bob"},
        "UNDO  aborted by bob",
        "undo",
        False,
    ),
    (
        {"at": AT, "type": "undo_step", "step": "shift:10", "action": "restore_endpoints"},
        "undo  shift:10",
        "undo",
        False,
    ),
    ({"at": AT, "type": "finished", "state": "succeeded"}, "=>    succeeded", "done", False),
    ({"at": AT, "type": "finished", "state": "rolled_back"}, "=>    rolled_back", "fail", False),
    ({"at": AT, "type": "finished", "state": "aborted"}, "=>    aborted", "abort", False),
]


@pytest.mark.parametrize(("raw", "line", "tone", "quiet"), TODAY)
def test_every_kind_dumps_to_the_dict_saved_before(
    raw: dict[str, Any], line: str, tone: str, quiet: bool
) -> None:
    event = EVENTS.validate_python(raw)
    assert not isinstance(event, OtherEvent)
    assert event.model_dump(mode="json") == raw
    assert json.loads(event.model_dump_json()) == raw
    assert list(event.model_dump(mode="json")) == list(raw)  # same keys in the same order


@pytest.mark.parametrize(("raw", "line", "tone", "quiet"), TODAY)
def test_every_kind_has_one_text(raw: dict[str, Any], line: str, tone: str, quiet: bool) -> None:
    event = EVENTS.validate_python(raw)
    assert (event.line(), event.tone, event.QUIET) == (line, tone, quiet)


def test_every_kind_is_covered_here() -> None:
    kinds = {raw["type"] for raw, *_ in TODAY}
    assert len(kinds) == 13


def test_an_unknown_kind_is_kept_as_it_was_saved() -> None:
    raw = {"at": AT, "type": "paused", "by": "carol", "note": "lunch", "extra": {"n": 1}}
    event = EVENTS.validate_python(raw)
    assert isinstance(event, OtherEvent)
    assert event.model_dump(mode="json") == raw
    assert event.line() == "-     paused by=carol note=lunch extra={'n': 1}"
    assert event.QUIET


# ---------------------------------------------------------------- records saved before


def _old_record() -> dict[str, Any]:
    """A blue-green deployment waiting at a gate, as the code before typed facts saved it."""
    d = Deployment(
        id="dep-1",
        model="churn",
        version=2,
        endpoint="churn",
        regions=["local"],
        spec=parse_deployment(
            {"endpoint": "churn", "strategy": {"kind": "blue-green", "steps": [10, 100]}}
        ),
        requested_by="alice",
        created_at=AT,
        updated_at=AT,
    )
    raw = json.loads(d.model_dump_json())
    endpoint = {"name": "churn", "region": "local", "config": {"name": "churn", "variants": []}}
    alarms = {
        "endpoint": "churn",
        "region": "local",
        "variant": "churn-v2",
        "names": ["mmm-churn-v2-errors"],
        "thresholds": {"error_rate": 0.05},
    }
    raw.update(
        state="waiting_approval",
        stage="rollout",
        events=[raw_event for raw_event, *_ in TODAY[:4]]
        + [{"at": AT, "type": "waiting_approval", "gate": "between_steps"}],
        context={
            "library": "sklearn",
            "sha256": "ab" * 32,
            "statuses": {"2": "staging", "1": "production"},
            "endpoints": [endpoint],
            "artifact_staging": "local://staging/churn/2/model.joblib",
            "golden_staging": "local://staging/churn/2/golden.jsonl",
            "artifact_production": "local://production/churn/2/model.joblib",
            "change": {"id": "dep-1", "url": "u", "head": "h", "merged_sha": None},
            "alarms": [alarms],
            "drained": [1],
            "gate": "between_steps",
            "collect_started": AT,
            "min_samples": 120,
            "progress": {"bake:10": {"started": AT}, "collect": {"started": AT, "samples": 3}},
        },
    )
    return raw


def test_a_record_saved_before_loads_typed_and_saves_back_unchanged() -> None:
    raw = _old_record()
    d = load_record(json.dumps(raw), {})
    assert d.damaged is None
    assert d.waiting_at == "between_steps" and d.context.gate is Gate.BETWEEN_STEPS
    assert d.context.progress["collect"] == StepProgress(started=AT, samples=3)
    assert d.context.alarms[0]["names"] == ["mmm-churn-v2-errors"]
    assert d.context.versions is None and d.context.retire_alarms == []
    assert [e.type for e in d.events][-1] == "waiting_approval"
    saved = json.loads(d.model_dump_json())
    assert saved["events"] == raw["events"] and saved["context"] == raw["context"]
    assert d.public()["events"] == raw["events"]


def test_facts_this_release_does_not_know_are_kept() -> None:
    raw = _old_record()
    raw["context"]["canary_region"] = "eu-west-1"
    d = load_record(json.dumps(raw), {})
    assert d.damaged is None
    assert json.loads(d.model_dump_json())["context"] == raw["context"]


def test_a_command_may_not_learn_undeclared_or_mistyped_facts() -> None:
    facts = Facts(library="sklearn")
    learnt = facts.merged({"drained": [1, 2], "statuses": {"1": "archived"}})
    # versions written as numbers (the local registry's, in older records) read back as text
    assert learnt.drained == ["1", "2"] and learnt.library == "sklearn"
    assert facts.drained == []  # merged() makes a new one
    with pytest.raises(ValueError, match="undeclared facts: drainned"):
        facts.merged({"drainned": [1]})
    with pytest.raises(ValueError, match="drained"):
        facts.merged({"drained": [1.5]})


def test_a_result_with_unusable_facts_fails_its_step_and_undoes() -> None:
    d = Deployment.model_validate({**_old_record(), "state": "queued", "stage": "validate"})
    d = d.model_copy(update={"events": [], "context": Facts()})
    d, cmds = decide(d, Start(at=datetime(2026, 1, 1, tzinfo=UTC)))
    later = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=1)
    d, cmds = decide(d, Succeeded(at=later, command=cmds[0], result={"facts": {"x": 1}}))
    assert d.state is DeploymentState.FAILED and cmds == []
    assert d.error == "validate: its result cannot be used: undeclared facts: x"
    assert [e.model_dump(mode="json") for e in d.events][-3:] == [
        {
            "at": iso(later),
            "type": "step_failed",
            "step": "validate",
            "error": "its result cannot be used: undeclared facts: x",
        },
        {"at": iso(later), "type": "undo_started", "reason": "error", "message": d.error},
        {"at": iso(later), "type": "finished", "state": "failed"},
    ]


def test_the_machine_logs_the_dicts_saved_before() -> None:
    d = Deployment.model_validate({**_old_record(), "state": "queued", "stage": "validate"})
    d = d.model_copy(update={"events": [], "context": Facts()})
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    d, cmds = decide(d, Start(at=t0))
    d, cmds = decide(d, Succeeded(at=t0, command=cmds[0], result={"summary": ""}))
    assert [e.model_dump(mode="json") for e in d.events] == [
        {"at": iso(t0), "type": "started"},
        {"at": iso(t0), "type": "step_started", "step": "validate", "stage": "validate"},
        {"at": iso(t0), "type": "step_succeeded", "step": "validate"},
        {"at": iso(t0), "type": "step_started", "step": "open_change", "stage": "codegen"},
    ]


# ---------------------------------------------------------------- when a worker looks


def _at(state: str, **update: Any) -> Deployment:
    raw = _old_record()
    d = Deployment.model_validate({**raw, "state": state})
    return d.model_copy(update=update)


PENDING = [Command(key="dep-1/009/bake:10", action="bake")]
WAKE = "2026-01-01T10:21:00.000Z"


@pytest.mark.parametrize(
    ("d", "due_at", "blocked"),
    [
        (_at("queued"), 0.0, None),
        (_at("running", pending=PENDING), 0.0, None),
        (
            _at("running", pending=PENDING, wake_at=WAKE),
            datetime.fromisoformat(WAKE).timestamp(),
            None,
        ),
        (_at("waiting_approval"), None, "waiting for an approval at gate between_steps"),
        (_at("succeeded"), None, None),
        (_at("rolled_back", pending=PENDING), None, None),
        (
            _at("running", pending=PENDING, damaged="spec.x: bad"),
            None,
            "its record cannot be read as saved (spec.x: bad)",
        ),
    ],
)
def test_due_at_and_blocked(d: Deployment, due_at: float | None, blocked: str | None) -> None:
    assert d.due_at == due_at
    assert d.blocked == blocked
    assert d.due(datetime.fromisoformat(WAKE).timestamp()) is (due_at is not None)
    assert d.due(0.0) is (due_at == 0.0)


def test_waiting_at_names_the_gate_only_while_waiting() -> None:
    assert _at("waiting_approval").waiting_at == "between_steps"
    assert _at("waiting_approval").public()["waiting_at"] == "between_steps"
    assert _at("running").waiting_at is None  # a gate left in the facts is not a wait
