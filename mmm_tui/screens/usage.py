"""The Usage view: every place each model is used (endpoints, artifacts, alarms, code,
registry), from the usage index the worker keeps."""

from __future__ import annotations

from typing import ClassVar

from core.domain import UsageKind, UsageSite
from mmm_tui.data import USAGE_COLUMNS, ListRows, every_usage_site, usage_row, usage_words
from mmm_tui.screens.base import TableView
from mmm_tui.widgets.paged_table import Column, Row, RowSource


class UsageScreen(TableView):
    """Usage sites (of one model when drilled into from Models); Enter opens the deployment
    that made a site."""

    noun = "usage sites"
    noun_one = "usage site"
    empty = "no usage sites recorded yet"
    columns: ClassVar[list[Column]] = USAGE_COLUMNS
    reload_every_s = 2.0

    def __init__(self, model: str | None = None) -> None:
        self.model = model
        super().__init__()
        self.title_text = f"Usage of {model}" if model else "Usage"

    def make_source(self) -> RowSource:
        svc, model = self.mmm.service, self.model
        return ListRows(lambda: every_usage_site(svc, model), usage_row, usage_words)

    def open(self, row: Row) -> None:
        """The deployment that made the site when the index says; else the deployments on
        the site's endpoint, or of its model."""
        site = row.item
        if not isinstance(site, UsageSite):
            return
        if site.deployment_id:
            from mmm_tui.screens.detail import DeploymentScreen

            self.app.push_screen(DeploymentScreen(site.deployment_id))
            return
        from mmm_tui.screens.deployments import DeploymentsScreen

        if site.kind is UsageKind.ENDPOINT:
            self.app.push_screen(DeploymentsScreen(endpoint=site.location))
        else:
            self.app.push_screen(DeploymentsScreen(model=site.model))
