"""Deployments as rows of the SQLite store, and a DeploymentQuery as SQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from core.domain import Deployment
from core.store import DeploymentQuery

# Columns kept beside the JSON body: enough to list and end a record whose body cannot be read.
SUMMARY_COLUMNS = (
    "id",
    "kind",
    "model",
    "version",
    "endpoint",
    "state",
    "rev",
    "created_at",
    "updated_at",
)
# Every column of a row: the summary, the body, and what the listing and due indexes read.
ROW_COLUMNS = (*SUMMARY_COLUMNS, "active", "due", "body")


def deployment_row(d: Deployment) -> dict[str, Any]:
    """The `deployments` row of `d`, as the store writes it."""
    return {
        "id": d.id,
        "kind": d.kind.value,
        "model": d.model,
        "version": d.version,
        "endpoint": d.endpoint,
        "state": d.state.value,
        "active": int(d.active),
        "due": d.due_at,  # when it is due is the domain's rule: the column indexes it
        "rev": d.rev,
        "body": d.model_dump_json(),
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    }


_INSERT_DEPLOYMENT = (
    f"INSERT INTO deployments ({', '.join(ROW_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ROW_COLUMNS))})"
)


def insert_deployments(db: sqlite3.Connection, deployments: Iterable[Deployment]) -> None:
    """Write the rows of new deployments, as they are (the caller holds the write transaction)."""
    rows = (deployment_row(d) for d in deployments)
    db.executemany(_INSERT_DEPLOYMENT, (tuple(r[c] for c in ROW_COLUMNS) for r in rows))


# The order of a listing (DeploymentQuery): the deployments_* indexes of m005 give it as is.
LISTING_ORDER = "active DESC, created_at DESC, id DESC"
RECENT_ORDER = "created_at DESC, id DESC"


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def where_clause(query: DeploymentQuery) -> tuple[str, list[Any]]:
    """The WHERE clause (maybe empty) of `query`'s filters, and its parameters.

    One filter leads: the first given of endpoint, model, states, kind (the most selective
    first, as they usually are). Its index (m005) gives the page in order; the others are
    checked on the rows it finds, their terms written `+column` so that the planner, which
    has no statistics, cannot choose their index instead."""
    states = query.wanted_states()
    if states is not None and not states:
        return "WHERE 0", []
    equal = {
        "endpoint": query.endpoint,
        "model": query.model,
        "state": states,
        "kind": query.kind.value if query.kind is not None else None,
    }
    leader = next((column for column, value in equal.items() if value is not None), None)
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in equal.items():
        if value is None:
            continue
        term = column if column == leader else f"+{column}"
        if isinstance(value, frozenset):
            clauses.append(f"{term} IN ({', '.join('?' * len(value))})")
            params += sorted(s.value for s in value)
            # The state decides `active`: saying so makes the listing order a range.
            if len({s.terminal for s in value}) == 1:
                clauses.append("active = ?" if column == leader else "+active = ?")
                params.append(int(not next(iter(value)).terminal))
        else:
            clauses.append(f"{term} = ?")
            params.append(value)
    if query.text:
        # LIKE ignores the case of ASCII letters: names are ASCII (core.names).
        columns = ("id", "model", "CAST(version AS TEXT)", "endpoint")
        clauses.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in columns) + ")")
        params += [_like(query.text)] * len(columns)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params
