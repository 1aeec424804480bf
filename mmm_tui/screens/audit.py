"""The Audit view: who did what, newest first."""

from __future__ import annotations

from typing import ClassVar

from core.domain import AuditRecord
from mmm_tui.data import AUDIT_COLUMNS, AuditRows
from mmm_tui.screens.base import TableView
from mmm_tui.widgets.paged_table import Column, Row, RowSource

DEPLOYMENT_PREFIXES = ("dep-", "ret-")


class AuditScreen(TableView):
    """The audit history by pages; Enter on a deployment's record opens the deployment."""

    title_text = "Audit"
    noun = "records"
    noun_one = "record"
    empty = "nothing audited yet"
    columns: ClassVar[list[Column]] = AUDIT_COLUMNS
    reload_every_s = 1.0

    def make_source(self) -> RowSource:
        return AuditRows(self.mmm.service)

    def open(self, row: Row) -> None:
        record = row.item
        if not isinstance(record, AuditRecord) or not record.target.startswith(DEPLOYMENT_PREFIXES):
            self.notify(f"{getattr(record, 'target', '?')} is not a deployment", severity="warning")
            return
        from mmm_tui.screens.detail import DeploymentScreen

        self.app.push_screen(DeploymentScreen(record.target))
