"""The dashboard driven by Pilot on a workspace filled through the core service: every view,
filtering, drilling down and back, the actions with their confirmations and refusals, and
following deployments run by another process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from core.domain import DeploymentState, Kind
from core.store import DeploymentQuery
from mmm_tui.app import MmmApp
from mmm_tui.data import DEPLOYMENT_COLUMNS
from mmm_tui.live import FeedChanged
from mmm_tui.screens.base import TableView
from mmm_tui.screens.deploy_form import DeployScreen
from mmm_tui.screens.deployments import DeploymentsScreen
from mmm_tui.screens.detail import DeploymentScreen
from mmm_tui.screens.dialogs import ConfirmScreen, HelpScreen
from mmm_tui.screens.endpoints import EndpointsScreen
from mmm_tui.screens.models import ModelsScreen
from mmm_tui.screens.usage import UsageScreen
from mmm_tui.widgets.paged_table import PagedTable, Row
from mmm_tui.widgets.top_bar import TopBar
from tests.tui import workspace
from tests.tui.conftest import SIZE, MakeApp, wait_for
from tests.tui.workspace import FAILED_ID, SHADOW_ID, WAITING_ID

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
ALL_IDS = [f"dep-250101-00000{n}" for n in (6, 3, 5, 4, 2, 1)]  # active first, then newest


def table(app: MmmApp) -> PagedTable:
    return app.screen.query_one(PagedTable)


def cell(row: Row, key: str) -> str:
    """A deployment row's cell by its column's key."""
    return row.cells[[c.key for c in DEPLOYMENT_COLUMNS].index(key)].plain


def shown(app: MmmApp) -> list[str]:
    return [row.key for row in table(app).visible_rows()]


def view_ready(app: MmmApp, kind: type[TableView]) -> bool:
    return isinstance(app.screen, kind) and app.screen.table.loaded


def notices(app: MmmApp) -> list[str]:
    return [n.message for n in app._notifications]


def screen_text(app: MmmApp) -> str:
    """What the screen shows, as text (the top layer: dialogs over views)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


# ---------------------------------------------------------------- views and navigation


async def test_every_view_lists_what_the_service_says(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "deployments")
        assert shown(app) == ALL_IDS
        assert "6 deployments" in str(app.screen.query_one("#caption", Static).content)

        await pilot.press("2")
        await wait_for(pilot, lambda: view_ready(app, ModelsScreen), "models")
        assert shown(app) == ["churn/1", "churn/2", "churn/3", "fraud/1", "fraud/2"]
        assert "fraud-scorer@local 100%" in screen_text(app)

        await pilot.press("3")
        await wait_for(pilot, lambda: view_ready(app, EndpointsScreen), "endpoints")
        assert shown(app) == [
            "churn-scorer@local/churn-v1/production",
            "churn-scorer@local/churn-v2/production",
            "fraud-scorer@local/fraud-v1/production",
            "fraud-scorer@local/fraud-v2/production",
        ]

        await pilot.press("4")
        await wait_for(pilot, lambda: view_ready(app, UsageScreen), "usage")
        kinds = {row.item.kind.value for row in table(app).visible_rows()}
        assert kinds == {"endpoint", "artifact", "monitor", "code", "registry"}

        await pilot.press("5")
        await wait_for(pilot, lambda: app.screen.title_text == "Audit", "audit")
        await wait_for(pilot, lambda: app.screen.table.loaded, "audit rows")
        actions = [row.item.action for row in table(app).visible_rows()]
        assert actions[0] == "deploy" and actions.count("register") == 5
        assert table(app).total == len(actions)

        await pilot.press("1")
        await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "back to deployments")


async def test_a_change_that_comes_before_a_view_is_composed_waits_for_its_mount(
    make_app: MakeApp,
) -> None:
    """The feed may announce a change while a view is not composed yet (or the app closes):
    the view has no table to refresh then, and the app goes on (it once stopped on it)."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "deployments")
        view = DeploymentsScreen()  # not composed: no table yet
        view.feed_changed(FeedChanged([]))
        await app.push_screen(view)
        await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "the new view")
        assert app.screen is view and view.table.row_count > 0


async def test_the_palette_opens_every_view_and_the_keys(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "deployments")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("View: Deployments", "View: Models", "View: Endpoints", "View: Usage",
                      "View: Audit", "Deploy a model version…", "Approve the highlighted "
                      "deployment", "Abort the highlighted deployment", "Filter this table"):  # fmt: skip
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"View: Endpoints")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: view_ready(app, EndpointsScreen), "endpoints by palette")

        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the keys")
        assert "filter the table as you type" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, EndpointsScreen), "keys closed")


async def test_filter_matches_over_the_whole_store_as_you_type(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "deployments")
        await pilot.press("slash", *"fraud")
        await wait_for(pilot, lambda: shown(app) == [WAITING_ID, "dep-250101-000002"], "fraud")
        assert table(app).total == 2

        assert "2 deployments" in str(app.screen.query_one("#caption", Static).content)

        bar = app.screen.query_one(Input)
        bar.value = "state:failed"
        await wait_for(pilot, lambda: shown(app) == [FAILED_ID], "failed ones")
        await wait_for(pilot, lambda: table(app).total == 1, "the count of one")
        caption = str(app.screen.query_one("#caption", Static).content)
        assert "1 deployment " in caption + " ", caption
        bar.value = "state:waiting model:churn"
        await wait_for(pilot, lambda: shown(app) == [SHADOW_ID], "waiting churn")
        bar.value = "no-such-thing"
        await wait_for(pilot, lambda: table(app).loaded and shown(app) == [], "nothing")
        assert "no deployments yet" in screen_text(app) or "match" in screen_text(app)

        await pilot.press("escape")  # drops the filter
        await wait_for(pilot, lambda: shown(app) == ALL_IDS, "every deployment again")
        assert table(app).has_focus

        await pilot.press("2")
        await wait_for(pilot, lambda: view_ready(app, ModelsScreen), "models")
        await pilot.press("slash", *"payments")
        await wait_for(pilot, lambda: shown(app) == ["fraud/1", "fraud/2"], "fraud's versions")


async def test_drill_into_a_deployment_and_back_by_keys_and_mouse(make_app: MakeApp) -> None:
    app = make_app(actor="bob")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "deployments")
        await pilot.press("down", "enter")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, DeploymentScreen) and app.screen.view is not None,
            "the shadow deployment's detail",
        )
        text = screen_text(app)
        assert SHADOW_ID in text and "⏸ gate:before_promote" in text
        assert "verdict PASS" in text and "shadow analysis of 1,000 pairs" in text
        assert "you may approve" in text  # bob is not the requester
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DeploymentsScreen), "back")

        # A click moves the cursor; a click on the highlighted row opens it.
        await pilot.click(PagedTable, offset=(3, 4))
        await wait_for(pilot, lambda: table(app).cursor == 3, "the clicked row")
        await pilot.click(PagedTable, offset=(3, 4))
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, DeploymentScreen) and app.screen.view is not None,
            "the failed deployment's detail",
        )
        assert "golden-data checks failed" in screen_text(app)
        assert "✗ run_checks" in screen_text(app)

        await pilot.press("escape", "3")
        await wait_for(pilot, lambda: view_ready(app, EndpointsScreen), "endpoints")
        await pilot.press("down", "down", "enter")  # fraud-scorer's deployments
        await wait_for(
            pilot,
            lambda: view_ready(app, DeploymentsScreen) and len(app.screen_stack) == 2,
            "deployments on fraud-scorer",
        )
        assert shown(app) == [WAITING_ID, "dep-250101-000002"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, EndpointsScreen), "back")


# ---------------------------------------------------------------- actions


async def confirm_on_first_row(pilot: object, app: MmmApp, key: str) -> ConfirmScreen:
    from textual.pilot import Pilot

    assert isinstance(pilot, Pilot)
    await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "deployments")
    assert shown(app)[0] == WAITING_ID
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
    assert isinstance(app.screen, ConfirmScreen)
    return app.screen


async def test_a_second_user_approves_and_the_rollout_goes_on(
    make_app: MakeApp, home: Path
) -> None:
    app = make_app(actor="bob")
    async with app.run_test(size=SIZE) as pilot:
        dialog = await confirm_on_first_row(pilot, app, "a")
        assert "passes gate before_rollout as bob" in screen_text(app)
        assert "shift:50, shift:100" in screen_text(app)
        assert dialog.confirm == "Approve"
        await pilot.press("y")
        store = workspace.service(home, "carol")
        await wait_for(
            pilot,
            lambda: store.get(WAITING_ID).state is DeploymentState.SUCCEEDED,
            "the approved rollout to finish",
        )
        assert [a.by for a in store.get(WAITING_ID).approvals] == ["bob"]
        row = lambda: next(r for r in table(app).visible_rows() if r.key == WAITING_ID)  # noqa: E731
        await wait_for(pilot, lambda: cell(row(), "state") == "succeeded", "the row to follow")
        assert cell(row(), "approvals") == "bob"
        store.close()


async def test_the_requester_cannot_approve_and_the_screen_stays_usable(
    make_app: MakeApp, home: Path
) -> None:
    app = make_app(actor="alice")
    async with app.run_test(size=SIZE) as pilot:
        await confirm_on_first_row(pilot, app, "a")
        await pilot.press("y")
        await wait_for(pilot, lambda: any("four-eyes" in n for n in notices(app)), "a refusal")
        assert isinstance(app.screen, DeploymentsScreen)
        store = workspace.service(home, "carol")
        assert store.get(WAITING_ID).state is DeploymentState.WAITING_APPROVAL
        assert store.audit_log(WAITING_ID)[0].action == "approve_refused"
        store.close()
        await pilot.press("2")
        await wait_for(pilot, lambda: view_ready(app, ModelsScreen), "another view")


async def test_abort_names_what_goes_back_then_undoes_it(make_app: MakeApp, home: Path) -> None:
    app = make_app(actor="alice")
    async with app.run_test(size=SIZE) as pilot:
        await confirm_on_first_row(pilot, app, "x")
        text = screen_text(app)
        assert "fraud-scorer (local): fraud-v1 100%, fraud-v2 0%  →  fraud-v1 100%" in text
        assert "create_variant: put fraud-scorer back as it was" in text
        assert "merge_change: revert change" in text
        await pilot.press("y")
        store = workspace.service(home, "carol")
        await wait_for(
            pilot,
            lambda: store.get(WAITING_ID).state is DeploymentState.ABORTED,
            "the abort to be carried out",
        )
        config = store.ports.serving.get_endpoint("fraud-scorer", "local")
        assert config is not None and [(v.name, v.weight) for v in config.variants] == [
            ("fraud-v1", 100)
        ]
        await wait_for(
            pilot,
            lambda: (
                cell(next(r for r in table(app).visible_rows() if r.key == WAITING_ID), "state")
                == "aborted"
            ),
            "the row to follow",
        )
        store.close()


async def test_cancel_changes_nothing(make_app: MakeApp, home: Path) -> None:
    app = make_app(actor="alice")
    async with app.run_test(size=SIZE) as pilot:
        await confirm_on_first_row(pilot, app, "x")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, DeploymentsScreen), "dismissed")
        store = workspace.service(home, "carol")
        assert store.get(WAITING_ID).state is DeploymentState.WAITING_APPROVAL
        store.close()


async def test_deploy_form_shows_the_plan_then_submits(make_app: MakeApp, home: Path) -> None:
    app = make_app(actor="alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "deployments")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the form")
        form = app.screen
        assert isinstance(form, DeployScreen)
        await pilot.press(*"churn", "tab", *"9", "tab", *"churn-canary")
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("no version 9" in n for n in notices(app)), "refusal")
        assert app.screen is form  # the form stays, with what was typed

        form.query_one("#version", Input).value = "3"
        await pilot.press("enter")
        await wait_for(pilot, lambda: form.planned is not None, "the dry-run plan")
        assert "churn v3 → churn-canary" in screen_text(app)
        assert " 1. validate" in screen_text(app) and "mark_production" in screen_text(app)
        store = workspace.service(home, "carol")
        assert store.page(DeploymentQuery(endpoint="churn-canary"))[1] == 1  # nothing new yet

        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DeploymentsScreen), "submitted")
        await wait_for(
            pilot,
            lambda: (
                store.page(DeploymentQuery(endpoint="churn-canary", text="churn"))[0][0].state
                is DeploymentState.SUCCEEDED
            ),
            "the new deployment to run here",
        )
        store.close()


async def test_retire_lists_the_sites_and_refuses_a_live_version(
    make_app: MakeApp, home: Path
) -> None:
    app = make_app(actor="alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: view_ready(app, ModelsScreen), "models")
        await pilot.press("r")  # churn v1 serves 100% on churn-scorer
        await wait_for(
            pilot, lambda: any("still takes live traffic" in n for n in notices(app)), "refusal"
        )
        assert isinstance(app.screen, ModelsScreen)

        await pilot.press("down", "down", "r")  # churn v3: registered, never served
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
        text = screen_text(app)
        assert "Retire churn v3: removes" in text and "registry" in text
        await pilot.press("y")
        store = workspace.service(home, "carol")
        retired = DeploymentQuery(kind=Kind.RETIRE, model="churn")
        await wait_for(
            pilot,
            lambda: [d.state for d in store.page(retired)[0]] == [DeploymentState.SUCCEEDED],
            "the retirement",
        )
        assert store.version("churn", "3").status.value == "retired"
        store.close()


async def test_read_only_refuses_every_action(make_app: MakeApp, home: Path) -> None:
    app = make_app(actor="bob", read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "deployments")
        assert "READ-ONLY" in str(app.screen.query_one(TopBar).content)
        for key in ("a", "x", "n"):
            await pilot.press(key)
        await wait_for(pilot, lambda: len(notices(app)) == 3, "three refusals")
        assert all("read-only" in n for n in notices(app))
        assert isinstance(app.screen, DeploymentsScreen)  # no dialog opened
        await pilot.press("2")
        await wait_for(pilot, lambda: view_ready(app, ModelsScreen), "models")
        await pilot.press("r", "d")
        await wait_for(pilot, lambda: len(notices(app)) == 5, "two more refusals")
        store = workspace.service(home, "carol")
        assert store.get(WAITING_ID).state is DeploymentState.WAITING_APPROVAL
        assert store.audit_log()[0].action == "deploy"  # nothing recorded since the fill
        store.close()


# ---------------------------------------------------------------- live


async def test_a_deployment_run_by_another_process_moves_on_screen(
    make_app: MakeApp, home: Path
) -> None:
    app = make_app(actor="alice")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "deployments")
        svc = workspace.service(home, "carol")
        d = svc.deploy("fraud", "1", "fraud-batch")  # recorded only: a worker runs it
        await wait_for(pilot, lambda: shown(app)[0] == d.id, "the new deployment, unasked")
        assert cell(table(app).visible_rows()[0], "state") == "queued"

        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.support.worker_process", "worker", str(home)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            await wait_for(
                pilot,
                lambda: (
                    cell(next(r for r in table(app).visible_rows() if r.key == d.id), "state")
                    == "succeeded"
                ),
                "the worker's progress on screen, without a key",
            )
        finally:
            output = worker.communicate(timeout=120)[0]
        assert worker.returncode == 0, output
        assert svc.get(d.id).state is DeploymentState.SUCCEEDED
        svc.close()


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_other_sizes_keep_what_matters(make_app: MakeApp, size: tuple[int, int]) -> None:
    app = make_app(actor="bob")
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "deployments")
        text = screen_text(app)
        for needed in (WAITING_ID, "fraud", "v2", "waiting", "succeeded", "ID", "STATE"):
            assert needed in text
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, DeploymentScreen) and app.screen.view is not None,
            "detail",
        )
        assert "gate:before_rollout" in screen_text(app)


async def test_resizing_keeps_the_screen_whole(make_app: MakeApp) -> None:
    app = make_app(actor="bob")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: view_ready(app, DeploymentsScreen), "deployments")
        for width, height in ((80, 24), (200, 50), (60, 15), (120, 40)):
            await pilot.resize_terminal(width, height)
            await pilot.pause(0.1)
            assert WAITING_ID in screen_text(app)
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, DeploymentScreen) and app.screen.view is not None,
            "detail",
        )
        for width, height in ((80, 24), (200, 50)):
            await pilot.resize_terminal(width, height)
            await pilot.pause(0.1)
            assert "gate:before_rollout" in screen_text(app)
