"""A table that reads its rows a page at a time and draws only the rows on screen.

Textual's DataTable holds every row it shows; at 50,000 deployments that is
seconds before the first frame. `PagedTable` asks a `RowSource` for the pages
the viewport needs (in a thread worker, never on the event loop), keeps them
by page number, and draws each visible line from them. Its scroll height is the
source's total, so the scrollbar and the mouse wheel work over every row while
only a screenful is ever formatted.

A filter or a reload starts a new generation: rows of the older one stay on
screen until the newer first page arrives, so the table never blanks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

Justify = Literal["left", "right"]
GAP = 1  # blank cells between two columns


@dataclass(frozen=True)
class Column:
    """One column: its preferred `width`, the least it may shrink to, whether it takes the
    room left over, and how long it survives on a narrow screen (higher stays longer)."""

    key: str
    label: str
    width: int
    min_width: int = 0  # 0: as `width`
    grow: bool = False
    priority: int = 1
    justify: Justify = "left"

    @property
    def least(self) -> int:
        return self.min_width or self.width


@dataclass(frozen=True)
class Row:
    """A row ready to draw: one Text per column, the key that names it, and what it shows."""

    key: str
    cells: tuple[Text, ...]
    item: Any = None


@dataclass(frozen=True)
class Page:
    """Rows from an offset, and how many rows match in all (None when the source cannot
    count them: then a full page means more may follow)."""

    rows: list[Row]
    total: int | None


class RowSource(Protocol):
    """Where a PagedTable reads from; `fetch` blocks (store, registry) and runs in a thread."""

    def fetch(self, text: str, offset: int, limit: int) -> Page: ...


def fit_columns(columns: Sequence[Column], width: int) -> list[tuple[Column, int]]:
    """The columns that fit in `width` cells, each with its width: the lowest priority go
    first (the rightmost of equals), then widths shrink toward their least, then the
    growing columns take what is left."""
    shown = list(columns)
    while len(shown) > 1 and sum(c.least for c in shown) + GAP * (len(shown) - 1) > width:
        lowest = min(c.priority for c in shown)
        victim = max(i for i, c in enumerate(shown) if c.priority == lowest)
        del shown[victim]
    room = width - GAP * (len(shown) - 1)
    widths = {c.key: c.least for c in shown}
    room -= sum(widths.values())
    for c in sorted(shown, key=lambda c: -c.priority):  # the most wanted get their width first
        extra = min(max(room, 0), c.width - widths[c.key])
        widths[c.key] += extra
        room -= extra
    growing = [c for c in shown if c.grow]
    for i, c in enumerate(growing):
        share = room // (len(growing) - i) if room > 0 else 0
        widths[c.key] += share
        room -= share
    if len(shown) == 1:  # alone, a column never runs past the edge
        widths[shown[0].key] = min(widths[shown[0].key], width)
    return [(c, max(1, widths[c.key])) for c in shown]


@dataclass
class _Generation:
    """What one filter (or reload) of the table has read so far."""

    number: int
    text: str
    pages: dict[int, list[Row]] = field(default_factory=dict)
    total: int | None = None
    arrived: bool = False  # its first page is in


class PagedTable(ScrollView, can_focus=True):
    """Rows from a RowSource, read by pages and drawn by lines; a cursor, Enter and clicks."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Open", show=True),
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "First", show=False),
        Binding("end,G", "jump(-1)", "Last", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "paged-table--header",
        "paged-table--cursor",
        "paged-table--placeholder",
    }

    DEFAULT_CSS = """
    PagedTable {
        overflow-x: hidden;
        overflow-y: auto;
        height: 1fr;
        scrollbar-gutter: stable;
        scrollbar-size-vertical: 1;
    }
    PagedTable > .paged-table--header { text-style: bold; }
    PagedTable > .paged-table--placeholder { color: $text-muted; }
    PagedTable > .paged-table--cursor {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
    }
    PagedTable:focus > .paged-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: $block-cursor-text-style;
    }
    """

    cursor: reactive[int] = reactive(0, always_update=True, init=False)

    class _FromTable(Message):
        """A message about the table (its `control`, for Textual's `on(..., "#id")`)."""

        def __init__(self, table: PagedTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> PagedTable:
            return self.table

    class Highlighted(_FromTable):
        """The cursor moved to `row` (None: no row there yet)."""

        def __init__(self, table: PagedTable, row: Row | None) -> None:
            super().__init__(table)
            self.row = row

    class Selected(_FromTable):
        """Enter (or a click on the highlighted row) on `row`."""

        def __init__(self, table: PagedTable, row: Row) -> None:
            super().__init__(table)
            self.row = row

    class Arrived(_FromTable):
        """A generation's first page is in: the table shows what its filter matches."""

        def __init__(self, table: PagedTable, total: int | None) -> None:
            super().__init__(table)
            self.total = total

    class _PageRead(Message):
        def __init__(self, generation: int, page: int, result: Page | Exception) -> None:
            super().__init__()
            self.generation = generation
            self.page = page
            self.result = result

    def __init__(
        self,
        columns: Sequence[Column],
        source: RowSource,
        page_size: int = 100,
        empty: str = "nothing here",
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.columns = list(columns)
        self.source = source
        self.page_size = page_size
        self.empty = empty
        self._count = 0
        self._shown = _Generation(0, "")  # what is drawn
        self._latest = self._shown  # what was asked for last (may not have arrived yet)
        self._asked: set[tuple[int, int]] = set()
        self._layout: tuple[int, list[tuple[Column, int]]] | None = None
        self._failed_once = False
        self._keep_place = False
        # When a row of data was first drawn, per generation (the benchmark reads these).
        self.painted_at: dict[int, float] = {}

    # ------------------------------------------------------------ what is shown

    @property
    def filter_text(self) -> str:
        return self._latest.text

    @property
    def total(self) -> int | None:
        """How many rows match (None while unknown)."""
        return self._shown.total

    @property
    def row_count(self) -> int:
        """Rows the scroll height holds: the total, or what has been read of an uncounted
        source plus one row that asks for more."""
        gen = self._shown
        if gen.total is not None:
            return gen.total
        if not gen.pages:
            return 0
        last = max(gen.pages)
        loaded = last * self.page_size + len(gen.pages[last])
        return loaded + (1 if len(gen.pages[last]) == self.page_size else 0)

    @property
    def loaded(self) -> bool:
        """The latest filter's first page is on screen."""
        return self._latest.arrived and self._shown is self._latest

    @property
    def generation(self) -> int:
        return self._shown.number

    def row_at(self, index: int) -> Row | None:
        page, within = divmod(index, self.page_size)
        rows = self._shown.pages.get(page)
        if rows is None or within >= len(rows):
            return None
        return rows[within]

    @property
    def current(self) -> Row | None:
        """The row under the cursor, if it has been read."""
        return self.row_at(self.cursor) if self.row_count else None

    def visible_rows(self) -> list[Row]:
        """The rows on screen now, top to bottom (those read so far)."""
        top = round(self.scroll_offset.y)
        rows = (self.row_at(i) for i in range(top, min(top + self._body_height, self.row_count)))
        return [r for r in rows if r is not None]

    # ------------------------------------------------------------ asking for rows

    def set_filter(self, text: str) -> None:
        """Show what `text` matches (over the whole source), from its first row."""
        if text == self._latest.text and self._latest.arrived:
            return
        self._start(text, keep_place=False)

    def reload(self) -> None:
        """Read the rows on screen again (something changed): the place and cursor stay."""
        self._start(self._latest.text, keep_place=True)

    def set_source(self, source: RowSource) -> None:
        self.source = source
        self._start(self._latest.text, keep_place=False)

    def _start(self, text: str, keep_place: bool) -> None:
        self._latest = _Generation(self._latest.number + 1, text)
        self._keep_place = keep_place
        self._asked = set()
        self._want()

    def _want(self) -> None:
        """Ask for the pages the viewport shows (of the latest generation) not yet read."""
        if not self.is_mounted:
            return
        gen = self._latest
        top = round(self.scroll_offset.y) if (gen is self._shown or self._keep_place) else 0
        first = top // self.page_size
        last = (top + max(self._body_height, 1)) // self.page_size
        for page in range(first, last + 1):
            if page in gen.pages or (gen.number, page) in self._asked:
                continue
            if page > 0 and gen.total is not None and page * self.page_size >= gen.total:
                continue
            self._asked.add((gen.number, page))
            self._read(gen.number, gen.text, page)

    def _read(self, generation: int, text: str, page: int) -> None:
        source, size = self.source, self.page_size

        def read() -> None:
            try:
                result: Page | Exception = source.fetch(text, page * size, size)
            except Exception as exc:  # shown as a notification; the table stays usable
                result = exc
            self.post_message(self._PageRead(generation, page, result))

        self.run_worker(read, thread=True, group="pages", exit_on_error=False)

    def on_paged_table__page_read(self, message: _PageRead) -> None:
        message.stop()
        gen = self._latest if message.generation == self._latest.number else None
        if gen is None and message.generation == self._shown.number:
            gen = self._shown
        if gen is None:
            return  # an older filter's page: nobody wants it now
        if isinstance(message.result, Exception):
            self._asked.discard((message.generation, message.page))
            if not self._failed_once:
                self._failed_once = True
                self.notify(f"could not read rows: {message.result}", severity="error")
            return
        self._failed_once = False
        page = message.result
        gen.pages[message.page] = page.rows
        if page.total is not None:
            gen.total = page.total
        elif len(page.rows) < self.page_size:  # a short page is the last one
            gen.total = message.page * self.page_size + len(page.rows)
        first_arrival = not gen.arrived
        gen.arrived = True
        if gen is not self._shown:
            self._shown = gen
            if not self._keep_place:
                self.scroll_to(y=0, animate=False, immediate=True)
                self.cursor = 0
        self._update_size()
        if self.cursor >= self.row_count > 0:
            self.cursor = self.row_count - 1
        self.refresh()
        if first_arrival:
            self.post_message(self.Arrived(self, gen.total))
            self.post_message(self.Highlighted(self, self.current))
        self._want()

    # ------------------------------------------------------------ geometry

    @property
    def _body_height(self) -> int:
        return max(self.scrollable_content_region.height - 1, 0)

    def _update_size(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, self.row_count + 1)

    def on_mount(self) -> None:
        self._update_size()
        if self._latest.number == 0:
            self._start(self._latest.text, keep_place=False)

    def on_resize(self, event: events.Resize) -> None:
        self._layout = None
        self._update_size()
        self._want()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._want()

    def _fitted(self, width: int) -> list[tuple[Column, int]]:
        if self._layout is None or self._layout[0] != width:
            self._layout = (width, fit_columns(self.columns, width))
        return self._layout[1]

    # ------------------------------------------------------------ the cursor

    def watch_cursor(self, old: int, new: int) -> None:
        if self.row_count and not 0 <= new < self.row_count:
            self.cursor = max(0, min(new, self.row_count - 1))
            return
        self._scroll_to_cursor()
        self.refresh()
        if old != new:
            self.post_message(self.Highlighted(self, self.current))

    def _scroll_to_cursor(self) -> None:
        top, height = round(self.scroll_offset.y), max(self._body_height, 1)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def action_cursor(self, step: int) -> None:
        if self.row_count:
            self.cursor = max(0, min(self.cursor + step, self.row_count - 1))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(self._body_height - 1, 1))

    def action_jump(self, where: int) -> None:
        if self.row_count:
            self.cursor = 0 if where == 0 else self.row_count - 1

    def action_select(self) -> None:
        row = self.current
        if row is not None:
            self.post_message(self.Selected(self, row))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return
        index = round(self.scroll_offset.y) + offset.y - 1
        if not 0 <= index < self.row_count:
            return
        if index == self.cursor or event.chain > 1:
            self.cursor = index
            self.action_select()
        else:
            self.cursor = index

    # ------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        fitted = self._fitted(width)
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("paged-table--header")
            cells = [Text(c.label.upper()) for c, _ in fitted]
            return self._strip(cells, fitted, width, style)
        index = round(self.scroll_offset.y) + y - 1
        if index >= self.row_count:
            if index == 0 and self.loaded:
                muted = self.get_component_rich_style("paged-table--placeholder")
                return self._strip([Text(self.empty)], [(fitted[0][0], width)], width, base + muted)
            return Strip.blank(width, base)
        row = self.row_at(index)
        style = base
        if index == self.cursor:
            style = base + self.get_component_rich_style("paged-table--cursor")
        if row is None:
            muted = self.get_component_rich_style("paged-table--placeholder")
            return self._strip([Text("…")], fitted[:1], width, style + muted)
        self.painted_at.setdefault(self._shown.number, time.perf_counter())
        by_key = {c.key: i for i, c in enumerate(self.columns)}
        cells = [row.cells[by_key[c.key]] for c, _ in fitted]
        return self._strip(cells, fitted, width, style, cursor=index == self.cursor)

    def _strip(
        self,
        cells: Sequence[Text],
        fitted: Sequence[tuple[Column, int]],
        width: int,
        style: Style,
        cursor: bool = False,
    ) -> Strip:
        line = Text(no_wrap=True, end="")
        for i, (cell, (column, cell_width)) in enumerate(zip(cells, fitted, strict=False)):
            if i:
                line.append(" " * GAP)
            text = cell.copy()
            text.truncate(cell_width, overflow="ellipsis")
            text.align(column.justify, cell_width)
            line.append_text(text)
        segments = list(line.render(self.app.console))
        if cursor:  # the cursor's colours win over the cells' own
            segments = list(Segment.apply_style(segments, post_style=style))
        else:
            segments = list(Segment.apply_style(segments, style=style))
        return Strip(segments).adjust_cell_length(width, style)
