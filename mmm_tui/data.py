"""The dashboard's read model: rows of each view, read through the core service.

Each source answers `fetch(text, offset, limit)` for a PagedTable, from a thread
worker (the calls block on the store, the registry, the serving and the monitor).
Deployments are paged and filtered by the store's indexes, however many there are.
Models, endpoints and usage sites are read whole (the service has no pages for
them) and filtered in memory; the audit history is paged, and read whole only
once a filter asks for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from rich.text import Text

from core.domain import AuditRecord, Deployment, DeploymentState, Kind, UsageSite
from core.ports import Variant
from core.service import Service
from core.store import DeploymentQuery
from mmm_tui.formatting import (
    age,
    detail_text,
    percent,
    rate,
    serving_text,
    state_text,
    step_bar,
    steps_done,
    version_text,
)
from mmm_tui.widgets.paged_table import Column, Page, Row

Clock = Callable[[], datetime]
T = TypeVar("T")

# ---------------------------------------------------------------- deployments

DEPLOYMENT_COLUMNS = [
    Column("id", "id", 17, priority=10),
    Column("model", "model", 10, min_width=6, grow=True, priority=8),
    Column("version", "version", 7, priority=8),
    Column("endpoint", "endpoint", 14, min_width=12, grow=True, priority=7),
    # the first to go on a narrow screen: most deployments serve in one region
    Column("regions", "region", 9, min_width=6, priority=1),
    Column("strategy", "strategy", 11, priority=3),
    Column("state", "state", 11, min_width=9, priority=9),
    Column("stage", "stage", 9, priority=4),
    Column("progress", "step", 10, priority=5),
    Column("by", "by", 7, min_width=5, priority=3),
    Column("approvals", "approved", 8, min_width=6, priority=2),
    Column("age", "age", 4, priority=6, justify="right"),
]

# Filter words that pick a column rather than match text: `state:failed`, `model:churn`...
_STATES = {s.value: s for s in DeploymentState}
_STATES.update({"waiting": DeploymentState.WAITING_APPROVAL})


def deployment_query(text: str, base: DeploymentQuery) -> DeploymentQuery:
    """The query a filter means: `key:value` words set a field (state, model, endpoint,
    kind), `active` keeps the active ones, the other words are matched as text (id, model,
    version, endpoint)."""
    update: dict[str, Any] = {}
    words = []
    for word in text.split():
        key, sep, value = word.partition(":")
        key = key.lower()
        if word.lower() == "active":
            update["active_only"] = True
        elif sep and key == "state" and value.lower() in _STATES:
            states = update.setdefault("states", set())
            states.add(_STATES[value.lower()])
        elif sep and key in ("model", "endpoint") and value:
            update[key] = value
        elif sep and key == "kind" and value.lower() in {k.value for k in Kind}:
            update["kind"] = Kind(value.lower())
        else:
            words.append(word)
    if "states" in update:
        update["states"] = frozenset(update["states"])
    update["text"] = " ".join(words)
    return base.model_copy(update=update)


def deployment_row(d: Deployment, plan_length: int, now: datetime) -> Row:
    approvals = ", ".join(a.by for a in d.approvals)
    cells = (
        Text(d.id, style="bold"),
        Text(d.model),
        Text(version_text(d.version, d.kind)),
        Text(d.endpoint if d.kind is Kind.DEPLOY else "-"),
        Text(",".join(d.regions) or "-", style="" if d.regions else "dim"),
        Text(d.strategy),
        state_text(d),
        Text(d.stage.value),
        step_bar(steps_done(d, plan_length), plan_length, d.state, width=4),
        Text(d.requested_by),
        Text(approvals or "-", style="" if approvals else "dim"),
        Text(age(d.created_at, now)),
    )
    return Row(key=d.id, cells=cells, item=d)


class DeploymentRows:
    """Deployments and retirements, active first then newest, a page at a time from the
    store; `base` narrows them (one model, one endpoint)."""

    columns = DEPLOYMENT_COLUMNS

    def __init__(self, svc: Service, now: Clock, base: DeploymentQuery | None = None) -> None:
        self.svc = svc
        self.now = now
        self.base = base or DeploymentQuery()
        self._plans: dict[str, int] = {}

    def fetch(self, text: str, offset: int, limit: int) -> Page:
        query = deployment_query(text, self.base).model_copy(
            update={"offset": offset, "limit": limit}
        )
        items, total = self.svc.page(query)
        now = self.now()
        return Page([deployment_row(d, self._plan_length(d), now) for d in items], total)

    def _plan_length(self, d: Deployment) -> int:
        # A plan depends on the strategy and the gates only: one per distinct spec is enough.
        key = f"{d.kind.value}:{d.spec.model_dump_json()}"
        if key not in self._plans:
            self._plans[key] = len(self.svc.plan(d))
        return self._plans[key]


# ---------------------------------------------------------------- lists read whole


class ListRows(Generic[T]):
    """Rows of a list read whole through the service (`load`), filtered in memory by every
    word of the filter (case-insensitive, over what `words` says of an item); only the rows
    of the page asked for are formatted (`row`). `invalidate()` has the next fetch read the
    list again."""

    def __init__(
        self, load: Callable[[], list[T]], row: Callable[[T], Row], words: Callable[[T], str]
    ) -> None:
        self._load = load
        self._row = row
        self._words = words
        self._lock = threading.Lock()
        self._items: list[T] | None = None
        self._haystacks: list[str] = []
        self._matched: tuple[str, list[T]] | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._items = None
            self._matched = None

    def fetch(self, text: str, offset: int, limit: int) -> Page:
        with self._lock:
            if self._items is None:
                self._items = self._load()
                self._haystacks = [self._words(item).lower() for item in self._items]
                self._matched = None
            if self._matched is None or self._matched[0] != text:
                needles = text.lower().split()
                items = self._items
                if needles:
                    items = [
                        item
                        for item, hay in zip(self._items, self._haystacks, strict=True)
                        if all(n in hay for n in needles)
                    ]
                self._matched = (text, items)
            matched = self._matched[1]
        return Page([self._row(item) for item in matched[offset : offset + limit]], len(matched))


def row_words(row: Row) -> str:
    return " ".join(cell.plain for cell in row.cells)


def listed_rows(load: Callable[[], list[Row]]) -> ListRows[Row]:
    """A ListRows over rows formatted when read (short lists: endpoints)."""
    return ListRows(load, lambda row: row, row_words)


MODEL_COLUMNS = [
    Column("model", "model", 18, min_width=8, grow=True, priority=9),
    Column("version", "version", 9, min_width=6, priority=9),
    Column("library", "library", 8, priority=5),
    Column("status", "status", 10, priority=7),
    Column("owner", "owner", 10, min_width=6, priority=4),
    Column("serving", "serving (endpoint@region weight)", 34, min_width=16, grow=True, priority=8),
]

STATUS_STYLES = {
    "production": "bold green",
    "staging": "cyan",
    "archived": "dim",
    "retired": "dim strike",
    "registered": "",
}


@dataclass(frozen=True)
class ModelVersionItem:
    """One version of one model, as the Models view lists it."""

    model: str
    version: str
    library: str
    status: str
    owner: str | None
    endpoints: list[dict[str, Any]]


def model_items(models: Iterable[dict[str, Any]]) -> list[ModelVersionItem]:
    """One item per model version, models by name, versions in the service's order."""
    return [
        ModelVersionItem(
            model=m["name"],
            version=str(v["version"]),
            library=v["library"],
            status=v["status"],
            owner=m.get("owner"),
            endpoints=v["endpoints"],
        )
        for m in sorted(models, key=lambda m: str(m["name"]))
        for v in m["versions"]
    ]


def model_row(item: ModelVersionItem) -> Row:
    cells = (
        Text(item.model, style="bold"),
        Text(version_text(item.version)),
        Text(item.library),
        Text(item.status, style=STATUS_STYLES.get(item.status, "")),
        Text(item.owner or "-"),
        serving_text(item.endpoints),
    )
    return Row(key=f"{item.model}/{item.version}", cells=cells, item=item)


def model_words(item: ModelVersionItem) -> str:
    where = " ".join(
        f"{e.get('endpoint')}@{e.get('region')} {e.get('role')}" for e in item.endpoints
    )
    return f"{item.model} v{item.version} {item.library} {item.status} {item.owner or ''} {where}"


def model_rows(models: Iterable[dict[str, Any]]) -> list[Row]:
    """Every model version formatted (what a table that holds every row needs)."""
    return [model_row(item) for item in model_items(models)]


ENDPOINT_COLUMNS = [
    Column("endpoint", "endpoint", 18, min_width=10, grow=True, priority=9),
    Column("region", "region", 10, min_width=6, priority=6),
    Column("variant", "variant", 18, min_width=10, grow=True, priority=8),
    Column("role", "role", 10, priority=7),
    Column("weight", "weight", 6, priority=9, justify="right"),
    Column("rate", "req/s", 7, priority=7, justify="right"),
    Column("errors", "errors", 7, priority=7, justify="right"),
    Column("p99", "p99 ms", 7, priority=6, justify="right"),
]


def endpoint_rows(svc: Service) -> list[Row]:
    """One row per variant of every endpoint in every region (its shadow too), with live
    figures from the monitor over the last minute."""
    rows = []
    for config in svc.endpoints():
        try:
            figures = {(f.variant, f.role): f for f in svc.figures(config.name, config.region)}
        except Exception:  # a monitor that cannot answer leaves the figures blank, not the view
            figures = {}
        variants: list[tuple[Variant, str, float | None]] = [
            (v, "production", v.weight) for v in config.variants
        ]
        if config.shadow is not None:
            variants.append((config.shadow.variant, "shadow", None))
        for variant, role, weight in variants:
            f = figures.get((variant.name, role))
            where = {"endpoint": config.name, "region": config.region, "model": variant.model}
            cells = (
                Text(config.name, style="bold"),
                Text(config.region),
                Text(variant.name),
                Text(role, style="italic yellow" if role == "shadow" else ""),
                Text(percent(weight) if weight is not None else "-"),
                Text(rate(f.request_rate) if f else "-"),
                _error_rate(f.error_rate if f else None),
                Text(f"{f.p99_ms:.1f}" if f and f.p99_ms is not None else "-"),
            )
            key = f"{config.name}@{config.region}/{variant.name}/{role}"
            rows.append(Row(key=key, cells=cells, item=where))
    return rows


def _error_rate(value: float | None) -> Text:
    if value is None:
        return Text("-")
    return Text(f"{value * 100:.1f}%", style="bold red" if value >= 0.05 else "")


USAGE_COLUMNS = [
    Column("model", "model", 14, min_width=8, priority=9),
    Column("kind", "kind", 9, priority=8),
    Column("version", "version", 8, min_width=5, priority=8),
    Column("location", "location", 34, min_width=14, grow=True, priority=9),
    Column("region", "region", 9, priority=6),
    Column("detail", "detail", 26, min_width=10, grow=True, priority=4),
    Column("deployment", "deployment", 17, priority=3),
]

USAGE_PAGE = 1000


def usage_row(site: UsageSite) -> Row:
    cells = (
        Text(site.model, style="bold"),
        Text(site.kind.value),
        Text(version_text(site.version)),
        Text(site.location),
        Text(site.region or "-"),
        Text(detail_text(site.detail)),
        Text(site.deployment_id or "-"),
    )
    key = f"{site.model}/{site.kind.value}/{site.version}/{site.location}/{site.region}"
    return Row(key=key, cells=cells, item=site)


def usage_words(site: UsageSite) -> str:
    return (
        f"{site.model} {site.kind.value} v{site.version} {site.location} {site.region or ''} "
        f"{detail_text(site.detail)} {site.deployment_id or ''}"
    )


def every_usage_site(svc: Service, model: str | None) -> list[UsageSite]:
    """The whole usage index (or one model's), read by pages."""
    sites: list[UsageSite] = []
    while True:
        page = svc.usage_index(model, offset=len(sites), limit=USAGE_PAGE)
        sites += page
        if len(page) < USAGE_PAGE:
            return sites


# ---------------------------------------------------------------- the audit history

AUDIT_COLUMNS = [
    Column("at", "at (utc)", 19, priority=8),
    Column("actor", "actor", 10, min_width=6, priority=9),
    Column("action", "action", 15, min_width=8, priority=9),
    Column("target", "target", 20, min_width=12, priority=9),
    Column("detail", "detail", 40, min_width=10, grow=True, priority=5),
]

AUDIT_PAGE = 1000


def audit_row(record: AuditRecord, index: int) -> Row:
    refused = record.action.endswith("_refused")
    cells = (
        Text(record.at[:19].replace("T", " ")),
        Text(record.actor, style="bold"),
        Text(record.action, style="bold red" if refused else ""),
        Text(record.target),
        Text(detail_text(record.detail)),
    )
    return Row(key=f"audit/{index}", cells=cells, item=record)


def audit_words(item: tuple[AuditRecord, int]) -> str:
    record = item[0]
    return (
        f"{record.at} {record.actor} {record.action} {record.target} {detail_text(record.detail)}"
    )


class AuditRows:
    """The audit history, newest first: by pages from the store; with a filter, read whole
    once (the store cannot match text in it) and matched in memory."""

    def __init__(self, svc: Service, target: str | None = None) -> None:
        self.svc = svc
        self.target = target
        self._whole = ListRows(self._read_all, lambda item: audit_row(*item), audit_words)

    def invalidate(self) -> None:
        self._whole.invalidate()

    def fetch(self, text: str, offset: int, limit: int) -> Page:
        if text.strip():
            return self._whole.fetch(text, offset, limit)
        records = self.svc.audit_log(self.target, limit=limit, offset=offset)
        return Page([audit_row(r, offset + i) for i, r in enumerate(records)], None)

    def _read_all(self) -> list[tuple[AuditRecord, int]]:
        records: list[AuditRecord] = []
        while True:
            page = self.svc.audit_log(self.target, limit=AUDIT_PAGE, offset=len(records))
            records += page
            if len(page) < AUDIT_PAGE:
                return [(r, i) for i, r in enumerate(records)]
