"""Paged, filtered deployment queries on a store of many deployments; audit paging; the
usage index; one connection per thread.

The big store is built once per module and size: 2,000 deployments in `make test`, 50,000
in `make test-slow` (building and reading those takes minutes on a busy machine). Every
answer is compared with the same filter and order computed in Python over the deployments
written, and the query plans show that pages and counts read indexes, not every record.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.domain import AuditRecord, Deployment, DeploymentState, Kind, UsageKind, UsageSite
from core.store import DeploymentQuery, Store, StoreError
from core.store.dynamodb import DynamoStore
from core.store.sqlite import SqliteStore
from tests.support.bulk import bulk_insert, drafts
from tests.support.moto_server import Aws, aws, aws_as_left  # noqa: F401
from tests.support.stores import open_store, store  # noqa: F401

S = DeploymentState


class Filled:
    def __init__(self, backend: SqliteStore | DynamoStore, written: list[Deployment]) -> None:
        self.store = backend
        self.written = written

    def expected(self, q: DeploymentQuery) -> list[str]:
        """The ids `q` matches, in the listing order: active first, newest first."""
        found = [d for d in self.written if matches(q, d)]
        found.sort(key=lambda d: (d.active, d.created_at, d.id), reverse=True)
        return [d.id for d in found]


def matches(q: DeploymentQuery, d: Deployment) -> bool:
    states = q.wanted_states()
    text = q.text.lower()
    return (
        (states is None or d.state in states)
        and q.model in (None, d.model)
        and q.endpoint in (None, d.endpoint)
        and q.kind in (None, d.kind)
        and any(text in f.lower() for f in (d.id, d.model, str(d.version), d.endpoint))
    )


# Built once per backend and size, and kept for the module: SQLite on a file; DynamoDB in
# a table of its own on the moto server, made again only if a test elsewhere reset the
# server in between (its first record gone).
_BUILT: dict[tuple[str, int], Filled] = {}
_TABLE = "mmm-state-queries"


@pytest.fixture(scope="module", autouse=True)
def _close_built() -> Iterator[None]:
    yield
    for built in _BUILT.values():
        built.store.close()
    _BUILT.clear()


def _still_there(built: Filled) -> bool:
    try:
        return built.store.get(built.written[0].id) is not None
    except StoreError:  # the table too is gone
        return False


@pytest.fixture(
    params=[
        pytest.param(("sqlite", 2_000), id="sqlite-2000"),
        pytest.param(("sqlite", 50_000), id="sqlite-50000", marks=pytest.mark.slow),
        # moto answers a Query slower than SQLite: a smaller mix, with every state, kind
        # and tie still in it
        # (in `make test-slow`: the store suite of test_store.py runs on DynamoDB in both)
        pytest.param(("dynamodb", 400), id="dynamodb-400", marks=pytest.mark.slow),
    ]
)
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Filled:
    backend, size = request.param
    built = _BUILT.get((backend, size))
    if backend == "dynamodb":
        aws: Aws = request.getfixturevalue("aws_as_left")
        if built is None or not _still_there(built):
            written = drafts(size, seed=7)
            dynamo = DynamoStore(aws.clients, _TABLE)
            bulk_insert(dynamo, written)
            built = _BUILT[(backend, size)] = Filled(dynamo, written)
        return built
    if built is None:
        written = drafts(size, seed=7)
        sqlite = SqliteStore(tmp_path_factory.mktemp("many") / "state.db")
        bulk_insert(sqlite, written)
        built = _BUILT[(backend, size)] = Filled(sqlite, written)
    return built


QUERIES = {
    "everything": DeploymentQuery(),
    "one state": DeploymentQuery(states={S.RUNNING}),
    "ended states": DeploymentQuery(states={S.FAILED, S.ABORTED}),
    "mixed states": DeploymentQuery(states={S.RUNNING, S.FAILED}),
    "active": DeploymentQuery(active_only=True),
    "active of states": DeploymentQuery(active_only=True, states={S.RUNNING, S.SUCCEEDED}),
    "model": DeploymentQuery(model="churn"),
    "model with _": DeploymentQuery(model="Pricing_EU"),
    "endpoint": DeploymentQuery(endpoint="ep-03"),
    "kind": DeploymentQuery(kind=Kind.RETIRE),
    "model endpoint kind": DeploymentQuery(model="ranker", endpoint="ep-07", kind=Kind.DEPLOY),
    "model and state": DeploymentQuery(model="fraud", states={S.SUCCEEDED}),
    "endpoint active": DeploymentQuery(endpoint="churn-live", active_only=True),
    "kind and state": DeploymentQuery(kind=Kind.RETIRE, states={S.QUEUED, S.ROLLED_BACK}),
    "text any case": DeploymentQuery(text="PRICING"),
    "text with _": DeploymentQuery(text="g_e"),
    "text endpoint": DeploymentQuery(text="EP-1"),
    "text and model": DeploymentQuery(text="live", model="ltv"),
    "text and state": DeploymentQuery(text="rank", states={S.WAITING_APPROVAL}),
}
# The index each filtered page is a range of (the first filter given of endpoint, model,
# states, kind leads); without one of these a page scans the covering listing index.
LEADS = {
    "one state": "deployments_by_state (state=? AND active=?)",
    "mixed states": "deployments_by_state (state=?)",
    "model": "deployments_by_model (model=?)",
    "model with _": "deployments_by_model (model=?)",
    "endpoint": "deployments_by_endpoint (endpoint=?)",
    "kind": "deployments_by_kind (kind=?)",
    "model endpoint kind": "deployments_by_endpoint (endpoint=?)",
    "model and state": "deployments_by_model (model=?)",
    "endpoint active": "deployments_by_endpoint (endpoint=?)",
    "kind and state": "deployments_by_state (state=?)",
    "text and model": "deployments_by_model (model=?)",
}


@pytest.mark.parametrize("name", QUERIES)
def test_every_filter_finds_what_it_should_in_order(filled: Filled, name: str) -> None:
    q = QUERIES[name].model_copy(update={"limit": 1000})
    expected = filled.expected(q)
    assert expected, "the mix of deployments should give every filter something to find"
    assert filled.store.count(q) == len(expected)
    assert [d.id for d in filled.store.deployments(q)] == expected[:1000]


def test_the_mix_has_every_state_kind_and_many_models(filled: Filled) -> None:
    assert {d.state for d in filled.written} == set(S)
    assert {d.kind for d in filled.written} == set(Kind)
    assert len({d.model for d in filled.written}) >= 10
    assert len({d.created_at for d in filled.written}) < len(filled.written)  # ties, by id


def test_text_ignores_case_and_takes_wildcards_literally(filled: Filled) -> None:
    found = filled.store.deployments(DeploymentQuery(text="g_e", limit=1000))
    assert found and {d.model for d in found} == {"Pricing_EU"}  # not "pricingzeu"
    upper = DeploymentQuery(text="CHURN-LIVE", limit=1000)
    assert {d.endpoint for d in filled.store.deployments(upper)} == {"churn-live"}
    assert filled.store.count(DeploymentQuery(text="%")) == 0
    some = filled.written[len(filled.written) // 2]
    by_id = filled.store.deployments(DeploymentQuery(text=some.id.upper()))
    assert [d.id for d in by_id] == [some.id]


def test_states_and_active_only_combine_and_an_empty_set_matches_nothing(filled: Filled) -> None:
    q = DeploymentQuery(states=frozenset(), limit=10)
    assert filled.store.count(q) == 0 and filled.store.deployments(q) == []
    active = filled.store.deployments(DeploymentQuery(active_only=True, limit=1000))
    assert active and all(d.active for d in active)
    both = DeploymentQuery(active_only=True, states={S.RUNNING, S.SUCCEEDED}, limit=1000)
    assert {d.state for d in filled.store.deployments(both)} == {S.RUNNING}


@pytest.mark.parametrize(
    ("name", "limit"), [("everything", 1000), ("model", 97), ("text endpoint", 333), ("active", 50)]
)
def test_pages_cover_the_filtered_set_once(filled: Filled, name: str, limit: int) -> None:
    q = QUERIES[name].model_copy(update={"limit": limit})
    expected = filled.expected(q)
    pages: list[list[str]] = []
    while page := [d.id for d in filled.store.deployments(q)]:
        assert len(page) <= limit
        pages.append(page)
        q = q.next_page()
    seen = [i for page in pages for i in page]
    assert len(seen) == len(set(seen))  # no two pages overlap
    assert seen == expected
    assert filled.store.count(q) == len(expected)
    assert all(len(p) == limit for p in pages[:-1])


def test_a_page_past_the_end_is_empty(filled: Filled) -> None:
    assert filled.store.deployments(DeploymentQuery(offset=len(filled.written))) == []


def test_records_come_back_whole(filled: Filled) -> None:
    newest = filled.store.deployments(DeploymentQuery(limit=3))
    by_id = {d.id: d for d in filled.written}
    for d in newest:
        assert d.model_dump() == by_id[d.id].model_copy(update={"rev": 1}).model_dump()


FULL_SCAN = re.compile(r"^SCAN (deployments|d)$")


def sqlite_of(filled: Filled) -> SqliteStore:
    if not isinstance(filled.store, SqliteStore):
        pytest.skip("a query plan of SQLite's (DynamoDB's reads: test_dynamodb_queries_...)")
    return filled.store


@pytest.mark.parametrize("name", QUERIES)
def test_queries_read_indexes_not_every_record(filled: Filled, name: str) -> None:
    q = QUERIES[name]
    sqlite = sqlite_of(filled)
    page, count = sqlite.explain(q), sqlite.explain(q, counting=True)
    for line in page + count:
        assert not FULL_SCAN.match(line), (name, page, count)
        if re.match(r"^(SCAN|SEARCH) deployments ", line):
            assert "USING COVERING INDEX" in line or "USING INDEX" in line, line
    # the page is chosen on an index, then only its records are read, by rowid
    assert "SEARCH d USING INTEGER PRIMARY KEY (rowid=?)" in page
    lead = LEADS.get(name)
    if lead is not None:
        assert any(line.startswith("SEARCH deployments") and line.endswith(lead) for line in page)
        assert any(line.startswith("SEARCH deployments") and line.endswith(lead) for line in count)
    elif name in ("everything", "active") or name.startswith("text") or "states" in name:
        assert any("COVERING INDEX" in line for line in page)


# The index each filtered page and count reads on DynamoDB: the first given of endpoint,
# model, one state and kind leads (several states are a filter on what another finds).
DYNAMO_LEADS = {
    "one state": "by_state",
    "model": "by_model",
    "model with _": "by_model",
    "endpoint": "by_endpoint",
    "kind": "by_kind",
    "model endpoint kind": "by_endpoint",
    "model and state": "by_model",
    "endpoint active": "by_endpoint",
    "text and model": "by_model",
    "active of states": "by_state",  # of running and succeeded, only running is active
    "kind and state": "by_kind",
    "text and state": "by_state",
}


@pytest.mark.parametrize("name", QUERIES)
def test_dynamodb_queries_read_one_index_never_the_table(
    filled: Filled, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not isinstance(filled.store, DynamoStore):
        pytest.skip("DynamoDB's reads (SQLite's plans: test_queries_read_indexes_...)")
    client = filled.store._db
    seen: list[tuple[str, str | None]] = []
    for operation in ("query", "scan", "batch_get_item", "get_item"):
        made = getattr(client, operation)

        def recorded(*args: Any, _op: str = operation, _made: Any = made, **kw: Any) -> Any:
            seen.append((_op, kw.get("IndexName")))
            return _made(*args, **kw)

        monkeypatch.setattr(client, operation, recorded)
    q = QUERIES[name]
    filled.store.deployments(q)
    filled.store.count(q)
    lead = DYNAMO_LEADS.get(name, "listing")
    queries = [index for op, index in seen if op == "query"]
    assert queries and set(queries) == {lead}, seen
    # the page's records, and only those, are read by key
    assert {op for op, _ in seen} == {"query", "batch_get_item"}, seen


def test_a_filter_leading_with_its_index_needs_no_sort_before_the_page(filled: Filled) -> None:
    # the index gives the listing order: only the page (at most `limit` rows) is sorted
    sqlite = sqlite_of(filled)
    for name in ("everything", "one state", "model", "endpoint", "kind", "active"):
        plan = sqlite.explain(QUERIES[name])
        inner = plan[: plan.index("SCAN page")]
        assert not any("TEMP B-TREE" in line for line in inner), (name, plan)


def test_recent_is_still_newest_first(filled: Filled) -> None:
    newest = sorted(filled.written, key=lambda d: (d.created_at, d.id), reverse=True)
    assert [d.id for d in filled.store.recent(limit=100)] == [d.id for d in newest[:100]]
    active = [d.id for d in newest if d.active][:20]
    assert [d.id for d in filled.store.recent(active_only=True, limit=20)] == active


def test_a_query_is_a_small_frozen_value() -> None:
    for bad in ({"limit": 1001}, {"limit": 0}, {"offset": -1}, {"page": 2}):
        with pytest.raises(ValidationError):
            DeploymentQuery.model_validate(bad)
    q = DeploymentQuery(states={"running"}, kind="retire")
    assert q.states == frozenset({S.RUNNING}) and q.kind is Kind.RETIRE and q.limit == 50
    with pytest.raises(ValidationError):
        q.offset = 3  # type: ignore[misc]
    assert q.next_page().offset == 50 and q.offset == 0


# ---------------------------------------------------------------- audit paging


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


def test_the_audit_log_pages_newest_first(store: Store) -> None:  # noqa: F811
    for n in range(7):
        target = "dep-a" if n % 2 == 0 else "dep-b"
        store.audit(
            AuditRecord(at=f"2025-01-01T00:00:0{n}Z", actor="alice", action=f"a{n}", target=target)
        )
    pages = [[r.action for r in store.audit_log(limit=3, offset=o)] for o in (0, 3, 6, 9)]
    assert pages == [["a6", "a5", "a4"], ["a3", "a2", "a1"], ["a0"], []]
    assert [r.action for r in store.audit_log("dep-a", limit=2, offset=1)] == ["a4", "a2"]
    assert [r.action for r in store.audit_log("dep-b")] == ["a5", "a3", "a1"]


# ---------------------------------------------------------------- the usage index


def site(model: str, location: str, version: int = 1, **kw: object) -> UsageSite:
    return UsageSite.model_validate(
        {"kind": UsageKind.ENDPOINT, "location": location, "model": model, "version": version, **kw}
    )


def test_the_usage_index_replaces_a_models_sites_and_pages(store: Store) -> None:  # noqa: F811
    churn = [
        site("churn", "churn-live", 3, region="local", deployment_id="dep-1"),
        site("churn", "services/churn.py", 2, kind=UsageKind.CODE, detail={"line": 12}),
        site("churn", "alarm:churn-v3", 3, kind=UsageKind.MONITOR, region="us-east-1"),
    ]
    store.replace_usage("churn", churn)
    store.replace_usage("ad_ctr", [site("ad_ctr", "ads", 10)])
    assert store.usage_index("churn") == churn  # in the order given, every field as given
    assert [s.model for s in store.usage_index()] == ["ad_ctr", "churn", "churn", "churn"]
    assert store.usage_index("churn", offset=1, limit=1) == churn[1:2]
    assert store.usage_index("nobody") == []
    # the version is kept as text (its type may change) and comes back as the field's type
    if isinstance(store, SqliteStore):
        kept = store.db.execute("SELECT DISTINCT typeof(version) FROM usage_sites").fetchall()
        assert kept == [("text",)]
    assert store.usage_index("ad_ctr")[0].version == "10"

    store.replace_usage("churn", churn[2:])
    assert store.usage_index("churn") == churn[2:]
    assert store.usage_index("ad_ctr") == [site("ad_ctr", "ads", 10)]
    store.replace_usage("churn", [])
    assert store.usage_index("churn") == []


def test_sites_of_another_model_are_refused_and_nothing_changes(store: Store) -> None:  # noqa: F811
    store.replace_usage("churn", [site("churn", "churn-live")])
    with pytest.raises(ValueError, match="fraud"):
        store.replace_usage("churn", [site("churn", "x"), site("fraud", "y")])
    assert store.usage_index("churn") == [site("churn", "churn-live")]


# ---------------------------------------------------------------- connections


def test_a_threads_connection_closes_when_the_thread_ends(sqlite_store: SqliteStore) -> None:
    store = sqlite_store  # noqa: F811
    used: list[sqlite3.Connection] = []
    go_on = threading.Event()
    opened = threading.Event()

    def work() -> None:
        store.count(DeploymentQuery())
        used.append(store.db)
        opened.set()
        go_on.wait()

    t = threading.Thread(target=work)
    t.start()
    opened.wait()
    assert store.open_connections == 2  # this thread's and the other's
    go_on.set()
    t.join()
    assert store.open_connections == 1
    with pytest.raises(sqlite3.ProgrammingError):
        used[0].execute("SELECT 1")
    assert store.count(DeploymentQuery()) == 0  # this thread's is still open


def test_threads_each_use_their_own_connection_safely(sqlite_store: SqliteStore) -> None:
    store = sqlite_store  # noqa: F811
    errors: list[BaseException] = []
    written = drafts(80, seed=3)

    def work(part: list[Deployment]) -> None:
        try:
            for d in part:
                store.create(
                    d, [], AuditRecord(at=d.created_at, actor="t", action="deploy", target=d.id)
                )
                assert store.get(d.id) is not None
                store.count(DeploymentQuery(model=d.model))
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(written[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count(DeploymentQuery()) == 80
    assert store.open_connections == 1


def test_close_closes_the_connections_of_threads_still_running(sqlite_store: SqliteStore) -> None:
    store = sqlite_store  # noqa: F811
    used: list[sqlite3.Connection] = []
    go_on, opened = threading.Event(), threading.Event()

    def work() -> None:
        used.append(store.db)
        opened.set()
        go_on.wait()

    t = threading.Thread(target=work)
    t.start()
    opened.wait()
    store.close()
    assert store.open_connections == 0
    with pytest.raises(sqlite3.ProgrammingError):
        used[0].execute("SELECT 1")
    go_on.set()
    t.join()
    assert store.count(DeploymentQuery()) == 0  # used again, it opens a new connection


def test_migrations_run_once_per_process_and_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = SqliteStore(path)
    # Migrating takes the write lock: with another connection holding it, opening a new
    # connection that migrated would wait (30 s) and fail. Opened after the first, none does.
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    results: list[object] = []

    def use() -> None:
        try:
            results.append(first.count(DeploymentQuery()))  # a new thread: a new connection
            results.append(SqliteStore(path).count(DeploymentQuery()))  # another store
        except BaseException as exc:  # reported by the test
            results.append(exc)

    t = threading.Thread(target=use)
    t.start()
    t.join()
    holder.execute("ROLLBACK")
    holder.close()
    assert results == [0, 0]
    first.close()
    # a file made again at the same path is migrated again
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    again = SqliteStore(path)
    assert again.count(DeploymentQuery()) == 0
    again.close()
