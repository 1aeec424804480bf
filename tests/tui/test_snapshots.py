"""Snapshots of every view at 120x40 on the filled workspace (fixed ids, times and clock).

Update them with `pytest tests/tui/test_snapshots.py --snapshot-update` after a change
meant to be seen, and look at the report before committing the new SVGs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from mmm_tui.app import MmmApp
from mmm_tui.screens.base import TableView
from mmm_tui.screens.deploy_form import DeployScreen
from mmm_tui.screens.detail import DeploymentScreen
from mmm_tui.screens.dialogs import ConfirmScreen
from tests.support.fakes import RecordingMonitor
from tests.tui.conftest import SIZE, MakeApp, wait_for

Compare = Callable[..., bool]
Before = Callable[[Pilot[None]], Awaitable[None]]


def settled(app: MmmApp) -> bool:
    """Nothing left to arrive: the top bar knows the worker, the view has its rows."""
    screen = app.screen
    if app.worker_alive is None:
        return False
    if isinstance(screen, TableView):
        return screen.table.loaded
    if isinstance(screen, DeploymentScreen):
        return screen.view is not None
    return True


def after(*keys: str, until: Callable[[MmmApp], bool] = settled) -> Before:
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, MmmApp)
        await wait_for(pilot, lambda: settled(app), "the first view")
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.05)
        await wait_for(pilot, lambda: until(app) and settled(app), "the view")
        for field in app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor is on or off at random
        await pilot.pause(0.2)

    return run_before


def snap(snap_compare: Compare, app: MmmApp, before: Before) -> bool:
    result: Any = snap_compare(app, terminal_size=SIZE, run_before=before)
    return bool(result)


def test_deployments_view(snap_compare: Compare, make_app: MakeApp) -> None:
    assert snap(snap_compare, make_app(actor="bob"), after())


def test_models_view(snap_compare: Compare, make_app: MakeApp) -> None:
    assert snap(snap_compare, make_app(actor="bob"), after("2"))


def test_endpoints_view(snap_compare: Compare, make_app: MakeApp) -> None:
    app = make_app(actor="bob")
    monitor = app.service.ports.monitor
    assert isinstance(monitor, RecordingMonitor)
    # (requests, errors, p99 ms) over the last minute, per (endpoint, variant, role)
    monitor.traffic[("churn-scorer", "churn-v1", "production")] = (1230, 6, 4.5)
    monitor.traffic[("fraud-scorer", "fraud-v1", "production")] = (600, 42, 12.25)
    assert snap(snap_compare, app, after("3"))


def test_usage_view(snap_compare: Compare, make_app: MakeApp) -> None:
    assert snap(snap_compare, make_app(actor="bob"), after("4"))


def test_audit_view(snap_compare: Compare, make_app: MakeApp) -> None:
    assert snap(snap_compare, make_app(actor="bob"), after("5"))


def test_deployment_detail_with_its_shadow_verdict(
    snap_compare: Compare, make_app: MakeApp
) -> None:
    assert snap(
        snap_compare,
        make_app(actor="bob"),
        after("down", "enter", until=lambda app: isinstance(app.screen, DeploymentScreen)),
    )


def test_abort_confirmation(snap_compare: Compare, make_app: MakeApp) -> None:
    assert snap(
        snap_compare,
        make_app(actor="alice"),
        # mounted: its Cancel button has the focus (taken in on_mount)
        after(
            "x",
            until=lambda app: (
                isinstance(app.screen, ConfirmScreen)
                and getattr(app.focused, "id", None) == "cancel"
            ),
        ),
    )


def test_deploy_form_with_its_plan(snap_compare: Compare, make_app: MakeApp) -> None:
    def planned(app: MmmApp) -> bool:
        return isinstance(app.screen, DeployScreen) and app.screen.planned is not None

    keys = ("n", *"churn", "tab", "3", "tab", *"churn-canary", "enter")
    assert snap(snap_compare, make_app(actor="alice"), after(*keys, until=planned))


def test_filtered_deployments(snap_compare: Compare, make_app: MakeApp) -> None:
    def filtered(app: MmmApp) -> bool:
        return isinstance(app.screen, TableView) and app.screen.table.filter_text == "churn"

    assert snap(snap_compare, make_app(actor="bob"), after("slash", *"churn", until=filtered))
