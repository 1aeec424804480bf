"""The Models view: every version of every model, its library, status, owner, and where
it serves at what weight."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from mmm_tui.data import (
    MODEL_COLUMNS,
    ListRows,
    ModelVersionItem,
    model_items,
    model_row,
    model_words,
)
from mmm_tui.screens.base import TableView
from mmm_tui.widgets.paged_table import Column, Row, RowSource


class ModelsScreen(TableView):
    """Model versions; Enter lists the usage sites of the model, `d` deploys the version,
    `r` retires it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "deploy", "Deploy"),
        Binding("r", "retire", "Retire"),
    ]
    title_text = "Models"
    noun = "model versions"
    noun_one = "model version"
    empty = "no models registered: `mmm register MODEL --artifact PATH --library LIB`"
    columns: ClassVar[list[Column]] = MODEL_COLUMNS
    reload_every_s = 2.0

    def make_source(self) -> RowSource:
        svc = self.mmm.service
        return ListRows(lambda: model_items(svc.models()), model_row, model_words)

    @property
    def selected(self) -> ModelVersionItem | None:
        row = self.table.current
        return row.item if row is not None and isinstance(row.item, ModelVersionItem) else None

    def open(self, row: Row) -> None:
        from mmm_tui.screens.usage import UsageScreen

        self.app.push_screen(UsageScreen(model=row.item.model))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("deploy", "retire"):
            return self.selected is not None or None
        return True

    def action_deploy(self) -> None:
        item = self.selected
        if item is not None:
            self.mmm.actions.deploy(model=item.model, version=item.version)

    def action_retire(self) -> None:
        item = self.selected
        if item is not None:
            self.mmm.actions.retire(item.model, item.version)
