"""Fixtures of the dashboard's tests: one filled workspace per test run (built once, under a
lock, whichever test process gets there first), copied for each test that changes it."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

from core.service import Service
from mmm_tui.app import MmmApp
from tests.tui import workspace

os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")

SIZE = (120, 40)
PATIENCE_S = 60.0  # the longest any condition is waited for (a bound, never a measure)


@pytest.fixture
def anyio_backend() -> str:
    """Pilot tests run on asyncio (anyio's pytest plugin runs the `async def` tests)."""
    return "asyncio"


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The filled workspace, built once for all test processes (xdist workers share it)."""
    # Under xdist each worker's base folder sits in the session's; without it the base
    # folder is the session's own (its parent is shared with every earlier run).
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    home = shared / "tui-template" / "ws"
    with (shared / "tui-template.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home.parent / "done").exists():
            shutil.rmtree(home.parent, ignore_errors=True)
            workspace.build(home, home.parent / "models")
            (home.parent / "done").write_text("ok")
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    """A copy of the filled workspace of this test's own."""
    copy = tmp_path / "ws"
    shutil.copytree(template, copy)
    return copy


MakeApp = Callable[..., MmmApp]


@pytest.fixture
def make_app(home: Path) -> Iterator[MakeApp]:
    """make_app(actor="alice", read_only=False) -> an MmmApp on this test's workspace."""
    services: list[Service] = []

    def make(actor: str = "alice", read_only: bool = False, **kwargs: object) -> MmmApp:
        svc = workspace.service(home, actor)
        services.append(svc)
        return MmmApp(svc, read_only=read_only, now=lambda: workspace.NOW, **kwargs)  # type: ignore[arg-type]

    yield make
    for svc in services:
        svc.close()


async def wait_for(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until `condition()` holds (failing after PATIENCE_S, a bound only)."""
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {PATIENCE_S:.0f}s for {what}")
        await pilot.pause(0.05)
