"""The dashboard at 10,000 models and 50,000 deployments, against a plain Textual DataTable.

A workspace with the embedded backends gets 50,000 deployments (tests/support/bulk.py:
drafted as the service drafts them, written with the store's own rows) and 10,000
registered models (through the local registry's `register`, one small real model file).
Then, in one process, each app headless at 120x40 (each plain table once, as it takes tens
of seconds; mmm MMM_RUNS times, before, between and after them):

- mmm: `MmmApp` on a Service of the workspace (its Deployments view reads a page from
  the store; the Models view reads the registry once and draws what is visible);
- plain, loading: a DataTable app that reads every row through the same Service (pages of
  1,000) and adds them all, the rows formatted as the dashboard formats them;
- plain, prebuilt: the same DataTable given the rows already formatted (its best case).

Timed from the start of the app to the first frame that shows the first page of rows
(first paint), and from a key press in the filter to the first frame that shows what the
filter matches (a filter keystroke: "churn", one key at a time; the plain table filters its
rows in memory and rebuilds, the same work whichever way its rows came, so only the
prebuilt table is typed into). The Models view is timed the same way, from its key.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.strip import Strip
from textual.widgets import DataTable, Input

from bench.table import Ratio
from core.bootstrap import build_service, init_workspace
from core.domain import Library
from core.service import Service
from core.store import PAGE_MAX
from core.store.sqlite import SqliteStore
from mmm_tui.app import MmmApp
from mmm_tui.data import DeploymentRows, model_rows
from mmm_tui.screens.base import TableView
from mmm_tui.screens.models import ModelsScreen
from mmm_tui.widgets.paged_table import Column, PagedTable, Row
from tests.support.bulk import bulk_insert, drafts
from tests.support.models import train_sklearn_regressor

DEPLOYMENTS = 50_000
MODELS = 10_000
MMM_RUNS = 3
SIZE = (120, 40)
TYPED = "churn"
PATIENCE_S = 120.0

os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")


# ---------------------------------------------------------------- the workspace


def fill(home: Path) -> None:
    init_workspace(home)
    started = time.perf_counter()
    store = SqliteStore(home / "state.db")
    bulk_insert(store, drafts(DEPLOYMENTS))
    store.close()
    filled = time.perf_counter() - started
    svc = build_service(home, "bench")
    artifact = train_sklearn_regressor(home.parent / "model")
    started = time.perf_counter()
    for i in range(MODELS):
        svc.ports.registry.register(
            f"model-{i:05d}", artifact, Library.SKLEARN, None, f"team-{i % 40}", "bench"
        )
    svc.close()
    print(
        f"workspace: {DEPLOYMENTS:,} deployments in {filled:.1f} s, "
        f"{MODELS:,} models registered in {time.perf_counter() - started:.1f} s"
    )


# ---------------------------------------------------------------- the plain DataTable


class PaintedTable(DataTable[Any]):
    """A DataTable that notes when it first draws a row after each `mark()`."""

    def __init__(self) -> None:
        super().__init__(cursor_type="row")
        self.painted: dict[int, float] = {}
        self.round = 0

    def mark(self) -> None:
        self.round += 1

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        if y >= 1 and self.row_count and self.round not in self.painted:
            self.painted[self.round] = time.perf_counter()
        return strip


class PlainApp(App[None]):
    """Every row in a DataTable; a filter Input that rebuilds it from the matching rows."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("slash", "filter", "Filter")]

    def __init__(self, columns: list[Column], load: Callable[[], list[Row]]) -> None:
        super().__init__()
        self.columns = columns
        self.load = load
        self.rows: list[Row] = []
        self.haystacks: list[str] = []

    def compose(self) -> ComposeResult:
        yield PaintedTable()
        yield Input(id="filter")

    @property
    def table(self) -> PaintedTable:
        return self.query_one(PaintedTable)

    def on_mount(self) -> None:
        self.table.add_columns(*(c.label.upper() for c in self.columns))
        self.rows = self.load()
        self.haystacks = [" ".join(c.plain for c in r.cells).lower() for r in self.rows]
        self.table.mark()
        self.table.add_rows([r.cells for r in self.rows])
        self.table.focus()

    def action_filter(self) -> None:
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        word = event.value.lower()
        matched = [r.cells for r, h in zip(self.rows, self.haystacks, strict=True) if word in h]
        table = self.table
        table.clear()
        table.mark()
        table.add_rows(matched)


def every_deployment(svc: Service) -> list[Row]:
    """What a dashboard without pages does: read every deployment, format every row."""
    source = DeploymentRows(svc, _now)
    rows: list[Row] = []
    while True:
        page = source.fetch("", len(rows), PAGE_MAX)
        rows += page.rows
        if len(page.rows) < PAGE_MAX:
            return rows


def _now() -> Any:
    from mmm_tui.formatting import utcnow

    return utcnow()


# ---------------------------------------------------------------- timing


async def _until(pilot: Any, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {PATIENCE_S:.0f}s for {what}")
        await pilot.pause(0.002)


def _paged(app: MmmApp) -> PagedTable:
    return app.screen.query_one(PagedTable)


async def time_mmm(home: Path) -> dict[str, Any]:
    svc = build_service(home, "bench")
    app = MmmApp(svc)
    out: dict[str, Any] = {}
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: bool(_paged(app).painted_at), "the first page")
        out["first paint"] = min(_paged(app).painted_at.values()) - started
        assert _paged(app).total == DEPLOYMENTS
        out["filter keystroke"] = await _type_mmm(pilot, app)

        pressed = time.perf_counter()
        await pilot.press("2")
        await _until(
            pilot,
            lambda: isinstance(app.screen, ModelsScreen) and bool(_paged(app).painted_at),
            "the models",
        )
        out["models: first paint"] = min(_paged(app).painted_at.values()) - pressed
        assert _paged(app).total == MODELS
        out["models: filter keystroke"] = await _type_mmm(pilot, app, "model-0042")
    svc.close()
    return out


async def _type_mmm(pilot: Any, app: MmmApp, typed: str = TYPED) -> list[float]:
    await pilot.press("slash")
    screen = app.screen
    assert isinstance(screen, TableView)
    table = screen.table
    times = []
    for key in typed:
        before = table._latest.number
        pressed = time.perf_counter()
        await pilot.press(key)

        def filtered(before: int = before) -> bool:
            return table._latest.number > before and table._latest.number in table.painted_at

        await _until(pilot, filtered, "the filtered rows")
        times.append(table.painted_at[table._latest.number] - pressed)
    await pilot.press("escape")
    return times


async def time_plain(
    columns: list[Column], load: Callable[[], list[Row]], typed: str = TYPED
) -> dict[str, Any]:
    app = PlainApp(columns, load)
    out: dict[str, Any] = {}
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: 1 in app.table.painted, "the first page")
        out["first paint"] = app.table.painted[1] - started
        await pilot.press("slash")
        times = []
        for key in typed:
            pressed = time.perf_counter()
            await pilot.press(key)
            wanted = app.table.round

            def painted(wanted: int = wanted) -> bool:
                return wanted in app.table.painted

            await _until(pilot, painted, "the filtered rows")
            times.append(app.table.painted[wanted] - pressed)
        out["filter keystroke"] = times
    return out


# ---------------------------------------------------------------- the report


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.0f} ms"


def _keys(values: list[float]) -> str:
    if not values:
        return "     (not typed: the same filtering as prebuilt)"
    return f"{_ms(values)} / {max(values) * 1000:6.0f} ms"


def main() -> list[Ratio]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "ws"
        fill(home)
        reader = build_service(home, "bench")
        prebuilt_deployments = every_deployment(reader)
        prebuilt_models = model_rows(reader.models())
        reader.close()

        def loading_deployments() -> list[Row]:
            svc = build_service(home, "bench")
            try:
                return every_deployment(svc)
            finally:
                svc.close()

        def loading_models() -> list[Row]:
            svc = build_service(home, "bench")
            try:
                return model_rows(svc.models())
            finally:
                svc.close()

        from mmm_tui.data import DEPLOYMENT_COLUMNS, MODEL_COLUMNS

        results: dict[str, list[dict[str, Any]]] = {}
        cases: dict[str, Callable[[], Any]] = {
            "mmm": lambda: time_mmm(home),
            "plain, loading": lambda: time_plain(DEPLOYMENT_COLUMNS, loading_deployments, ""),
            "plain, prebuilt": lambda: time_plain(DEPLOYMENT_COLUMNS, lambda: prebuilt_deployments),
            "plain models, loading": lambda: time_plain(MODEL_COLUMNS, loading_models, ""),
            "plain models, prebuilt": lambda: time_plain(
                MODEL_COLUMNS, lambda: prebuilt_models, "model-0042"
            ),
        }
        plain = [name for name in cases if name != "mmm"]
        order = ["mmm", *plain[:1], "mmm", *plain[1:3], "mmm", *plain[3:]]
        for name in order:
            results.setdefault(name, []).append(asyncio.run(cases[name]()))
            print(f"  {name} done", flush=True)
        return report(results)


def report(results: dict[str, list[dict[str, Any]]]) -> list[Ratio]:
    def first(name: str, key: str = "first paint") -> list[float]:
        return [r[key] for r in results[name]]

    def keys(name: str, key: str = "filter keystroke") -> list[float]:
        return [t for r in results[name] for t in r[key]]

    print(
        f"\nDeployments view, {DEPLOYMENTS:,} deployments "
        f"(mmm: median of {MMM_RUNS} runs; each plain table: one run)"
    )
    print("                          first paint   filter keystroke (median / max)")
    for name, label in (
        ("mmm", "mmm (paged)"),
        ("plain, loading", "plain DataTable, loading"),
        ("plain, prebuilt", "plain DataTable, prebuilt"),
    ):
        print(f"  {label:26s}{_ms(first(name))}   {_keys(keys(name))}")
    mmm, loading, prebuilt = (
        statistics.median(first(n)) for n in ("mmm", "plain, loading", "plain, prebuilt")
    )
    print(
        f"  first paint: plain loading / mmm x{loading / mmm:.1f}, prebuilt / mmm x{prebuilt / mmm:.1f}"
    )
    k_mmm, k_plain = statistics.median(keys("mmm")), statistics.median(keys("plain, prebuilt"))
    print(f"  filter keystroke: plain / mmm x{k_plain / k_mmm:.1f}")

    print(
        f"\nModels view, {MODELS:,} model versions "
        f"(from its key; mmm: median of {MMM_RUNS} runs; each plain table: one run)"
    )
    m_first = [r["models: first paint"] for r in results["mmm"]]
    m_keys = [t for r in results["mmm"] for t in r["models: filter keystroke"]]
    print(f"  {'mmm (visible rows)':26s}{_ms(m_first)}   {_keys(m_keys)}")
    for name, label in (
        ("plain models, loading", "plain DataTable, loading"),
        ("plain models, prebuilt", "plain DataTable, prebuilt"),
    ):
        print(f"  {label:26s}{_ms(first(name))}   {_keys(keys(name))}")
    print("  (plain first paint counts its app start too; mmm's counts from the key)")
    return [
        Ratio(f"dashboard first paint, {DEPLOYMENTS:,} deployments / plain DataTable "
              "(rows prebuilt)", mmm, prebuilt, "s"),
        Ratio("dashboard filter keystroke / plain DataTable (rows prebuilt)", k_mmm, k_plain,
              "s"),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
