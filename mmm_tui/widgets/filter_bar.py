"""The filter line under a table: opened with `/`, filters as you type."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input


class FilterBar(Input):
    """An Input that says when it is done (Enter: keep the filter) or dropped (Escape)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "drop", "Clear filter", show=True),
        Binding("down", "done", "To the table", show=False),
    ]

    DEFAULT_CSS = """
    FilterBar, FilterBar:focus { height: 1; border: none; padding: 0 1; }
    """

    class Dropped(Message):
        """Escape: clear the filter and close the bar."""

    class Done(Message):
        """Enter or Down: keep the filter, go back to the table."""

    def __init__(self, placeholder: str) -> None:
        # Not selecting on focus: keys typed right after `/` would replace each other.
        super().__init__(placeholder=placeholder, id="filter", select_on_focus=False)
        self.display = False

    def action_drop(self) -> None:
        self.post_message(self.Dropped())

    def action_done(self) -> None:
        self.post_message(self.Done())

    async def action_submit(self) -> None:
        self.post_message(self.Done())
