"""What every view shares: the top bar, a caption, one paged table, the filter, the footer;
Escape to go back, `/` to filter, and following the change feed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static

from mmm_tui.live import FeedChanged
from mmm_tui.widgets.filter_bar import FilterBar
from mmm_tui.widgets.paged_table import Column, PagedTable, Row, RowSource
from mmm_tui.widgets.top_bar import TopBar

if TYPE_CHECKING:
    from mmm_tui.app import MmmApp


class MmmScreen(Screen[None]):
    """A screen of the dashboard: the top bar and the footer around its own body."""

    @property
    def mmm(self) -> MmmApp:
        from mmm_tui.app import MmmApp

        return cast(MmmApp, self.app)

    def feed_changed(self, message: FeedChanged) -> None:
        """Deployments changed: screens that show them read them again."""

    def on_screen_resume(self) -> None:
        for bar in self.query(TopBar):
            bar.update_bar()


class TableView(MmmScreen):
    """A view of one table; subclasses say its title, columns and source."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # A priority binding runs before the key reaches the table, so the keys typed right
        # after `/` already go to the filter.
        Binding("slash", "filter", "Filter", priority=True),
        Binding("escape", "back", "Back"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    title_text = ""
    noun = "rows"
    noun_one = "row"  # the caption's "1 row"
    empty = "nothing here"
    columns: ClassVar[list[Column]] = []
    # At most one reload of a whole list per this many seconds (a busy feed would else
    # read it again and again); 0 for paged sources, which read a screenful.
    reload_every_s = 0.0
    # Read again every this many seconds even when the feed says nothing (live figures).
    refresh_every_s: float | None = None

    def __init__(self) -> None:
        super().__init__()
        self.source = self.make_source()
        self._last_reload = 0.0
        self._reload_pending = False
        self._suspended = False

    def make_source(self) -> RowSource:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        yield TopBar(self.mmm)
        yield Static(id="caption")
        yield PagedTable(self.columns, self.source, empty=self.empty, id="table")
        yield FilterBar(f"filter {self.noun} (over all of them)")
        yield Footer()

    @property
    def table(self) -> PagedTable:
        return self.query_one(PagedTable)

    @property
    def filter_bar(self) -> FilterBar:
        return self.query_one(FilterBar)

    def on_mount(self) -> None:
        self._caption()
        self.table.focus()
        if self.refresh_every_s:
            self.set_interval(self.refresh_every_s, self.reload)

    # ------------------------------------------------------------ caption

    def _caption(self) -> None:
        table = self.table
        text = Text(f" {self.title_text}", style="bold")
        if table.total is not None:
            text.append(f"  {table.total:,} {self.noun_one if table.total == 1 else self.noun}")
        elif table.loaded:
            text.append(f"  {table.row_count:,}+ {self.noun}", style="")
        else:
            text.append("  loading…", style="dim")
        if table.filter_text:
            text.append("  filter: ", style="dim")
            text.append(table.filter_text, style="bold yellow")
        self.query_one("#caption", Static).update(text)

    def on_paged_table_arrived(self, message: PagedTable.Arrived) -> None:
        self._caption()

    def on_paged_table_highlighted(self, message: PagedTable.Highlighted) -> None:
        self.refresh_bindings()

    def on_paged_table_selected(self, message: PagedTable.Selected) -> None:
        self.open(message.row)

    def open(self, row: Row) -> None:
        """Enter on `row`: drill down (the views that can, say where)."""

    # ------------------------------------------------------------ filter

    def action_filter(self) -> None:
        bar = self.filter_bar
        if bar.has_focus:  # a `/` typed in the filter is text
            bar.insert_text_at_cursor("/")
            return
        bar.display = True  # at once: a style from a class would only apply at the next refresh
        self.set_focus(bar)

    def on_input_changed(self, message: FilterBar.Changed) -> None:
        if message.input is self.filter_bar:
            self.table.set_filter(message.value.strip())
            self._caption()

    def on_filter_bar_done(self, message: FilterBar.Done) -> None:
        if not self.filter_bar.value:
            self.filter_bar.display = False
        self.table.focus()

    def on_filter_bar_dropped(self, message: FilterBar.Dropped) -> None:
        self.clear_filter()

    def clear_filter(self) -> None:
        bar = self.filter_bar
        bar.value = ""
        bar.display = False
        self.table.set_filter("")
        self.table.focus()
        self._caption()

    def action_back(self) -> None:
        """Escape: drop the filter first, then go back to where Enter came from."""
        if self.filter_bar.value or self.filter_bar.display:
            self.clear_filter()
        elif len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    # ------------------------------------------------------------ live

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Read the rows on screen again; a whole list at most every `reload_every_s`."""
        wait = self._last_reload + self.reload_every_s - time.monotonic()
        if wait > 0:
            if not self._reload_pending:
                self._reload_pending = True
                self.set_timer(wait, self._reload_now)
            return
        self._reload_now()

    def _reload_now(self) -> None:
        self._reload_pending = False
        if not self.query(PagedTable):
            # A change arrived before the view was composed, or while the app closes: the
            # table reads its rows when it is mounted; there is nothing to refresh now.
            return
        self._last_reload = time.monotonic()
        invalidate = getattr(self.source, "invalidate", None)
        if callable(invalidate):
            invalidate()
        self.table.reload()

    def feed_changed(self, message: FeedChanged) -> None:
        self.reload()

    def on_screen_suspend(self) -> None:
        self._suspended = True

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self._suspended:  # what changed while another view was on top
            self._suspended = False
            self.reload()
