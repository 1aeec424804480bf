"""The Deployments view: every deployment and retirement, active first, then newest."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from core.domain import Deployment, DeploymentState
from core.store import DeploymentQuery
from mmm_tui.data import DEPLOYMENT_COLUMNS, DeploymentRows
from mmm_tui.screens.base import TableView
from mmm_tui.widgets.paged_table import Column, Row, RowSource


class DeploymentsScreen(TableView):
    """Deployments from the store a page at a time; Enter opens one. Narrowed to one
    endpoint or model when drilled into from the Endpoints or Models view."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "deploy", "Deploy"),
        Binding("a", "approve", "Approve"),
        Binding("x", "abort", "Abort"),
    ]
    noun = "deployments"
    noun_one = "deployment"
    columns: ClassVar[list[Column]] = DEPLOYMENT_COLUMNS

    def __init__(self, endpoint: str | None = None, model: str | None = None) -> None:
        self.endpoint = endpoint
        self.model = model
        super().__init__()
        if endpoint:
            self.title_text = f"Deployments on {endpoint}"
        elif model:
            self.title_text = f"Deployments of {model}"
        else:
            self.title_text = "Deployments"
        self.empty = (
            "no deployments match"
            if endpoint or model
            else "no deployments yet: press n to deploy a model version"
        )

    def make_source(self) -> RowSource:
        base = DeploymentQuery(endpoint=self.endpoint, model=self.model)
        return DeploymentRows(self.mmm.service, self.mmm.now, base)

    @property
    def selected(self) -> Deployment | None:
        row = self.table.current
        return row.item if row is not None and isinstance(row.item, Deployment) else None

    def open(self, row: Row) -> None:
        from mmm_tui.screens.detail import DeploymentScreen

        self.app.push_screen(DeploymentScreen(row.key))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        d = self.selected
        if action == "approve":
            return (d is not None and d.state is DeploymentState.WAITING_APPROVAL) or None
        if action == "abort":
            return (d is not None and d.active) or None
        return True

    def action_deploy(self) -> None:
        self.mmm.actions.deploy(endpoint=self.endpoint, model=self.model)

    def action_approve(self) -> None:
        if self.selected is not None:
            self.mmm.actions.approve(self.selected.id)

    def action_abort(self) -> None:
        if self.selected is not None:
            self.mmm.actions.abort(self.selected.id)
