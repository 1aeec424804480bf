"""What a saved change tells the feed (core.feed.entry_between); no I/O."""

from __future__ import annotations

from core.domain import StepProgress
from core.feed import entry_between
from core.machine import Start, Waiting, decide
from tests.unit.test_machine import at, make


def test_creation_is_the_first_entry_with_its_created_event() -> None:
    d = make()
    entry = entry_between(None, d)
    assert entry is not None and entry.deployment_id == d.id
    assert [e.type for e in entry.events] == [e.type for e in d.events]


def test_a_step_tells_its_events_and_where_the_deployment_is() -> None:
    d = make()
    started, _ = decide(d, Start(at=at(0)))
    entry = entry_between(d, started)
    assert entry is not None
    assert [e.type for e in entry.events] == ["started", "step_started"]
    assert entry.state.value == "running" and entry.stage.value == "validate"
    assert entry.progress is None


def test_progress_of_a_long_step_is_told_once_per_change_and_never_kept_as_an_event() -> None:
    d, _ = decide(make(), Start(at=at(0)))
    cmd = d.pending[0]
    first = StepProgress(started="2026-01-01T00:00:00.000Z", samples=10, target=500)
    looked, _ = decide(d, Waiting(at=at(1), command=cmd, until=at(2), progress=first))
    entry = entry_between(d, looked)
    assert entry is not None and entry.events == []
    assert entry.progress == {"validate": first.model_dump(mode="json")}
    assert looked.events == d.events  # the history does not grow while a step waits

    again, _ = decide(looked, Waiting(at=at(2), command=cmd, until=at(3), progress=first))
    assert entry_between(looked, again) is None  # nothing new to tell

    more = first.model_copy(update={"samples": 60})
    moved, _ = decide(again, Waiting(at=at(3), command=cmd, until=at(4), progress=more))
    entry = entry_between(again, moved)
    assert entry is not None and entry.progress == {"validate": more.model_dump(mode="json")}
