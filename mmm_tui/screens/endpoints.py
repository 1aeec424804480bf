"""The Endpoints view: per region, each endpoint's variants with their weights and shadow,
and live figures from the monitor (request rate, error rate, p99)."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from mmm_tui.data import ENDPOINT_COLUMNS, endpoint_rows, listed_rows
from mmm_tui.screens.base import TableView
from mmm_tui.widgets.paged_table import Column, Row, RowSource


class EndpointsScreen(TableView):
    """Endpoints and their variants; Enter lists the endpoint's deployments."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("n", "deploy", "Deploy here")]
    title_text = "Endpoints"
    noun = "variants"
    noun_one = "variant"
    empty = "no endpoints yet: they appear with the first deployment"
    columns: ClassVar[list[Column]] = ENDPOINT_COLUMNS
    reload_every_s = 1.0
    refresh_every_s = 3.0  # request rates move without any deployment changing

    def make_source(self) -> RowSource:
        svc = self.mmm.service
        return listed_rows(lambda: endpoint_rows(svc))

    def open(self, row: Row) -> None:
        from mmm_tui.screens.deployments import DeploymentsScreen

        self.app.push_screen(DeploymentsScreen(endpoint=row.item["endpoint"]))

    def action_deploy(self) -> None:
        row = self.table.current
        self.mmm.actions.deploy(endpoint=row.item["endpoint"] if row is not None else None)
