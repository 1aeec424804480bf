"""The Store on DynamoDB: one table (core.store.dynamodb_table), shared by any number of
workers on any number of machines.

Every write that must not half-happen is one TransactWriteItems: a deployment saved with
its revision as the condition (a stale revision is a Conflict, so two writers never both
win), its locks taken or released, its audit record and its change-feed entry. Entries of
the feed and the audit history are numbered by one sequence item that the same
transaction moves on, conditioned on its value: a transaction that lost the race reads it
again and retries, so entries commit in the order of their numbers and a reader never sees
entry N+1 before entry N (the feed's promise, as on SQLite). Writes that need no order
(a look at a long step that changed nothing a person sees) leave the sequence alone.

Reads of a deployment are strongly consistent; listings read the indexes, which DynamoDB
keeps up to date within a fraction of a second.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from core.domain import AuditRecord, Deployment, UsageSite
from core.feed import FeedEntry, entry_between
from core.store import Busy, Conflict, DeploymentQuery, StoreError, load_record
from core.store.dynamodb_table import (
    LISTED,
    SUMMARY,
    audit_item,
    command_item,
    cursor_item,
    delivery_item,
    deployment_item,
    feed_item,
    held_locks_item,
    intent_item,
    number,
    seq_key,
    table_definition,
    unpack,
    usage_item,
)

_SEQ = {"pk": "seq", "sk": "-"}
_TRIES = 200  # of a transaction that lost the sequence to another writer
_BATCH_GET = 100  # DynamoDB's limits per BatchGetItem and BatchWriteItem
_BATCH_WRITE = 25


class _Cancelled(Exception):
    """A transaction's conditions failed: the indexes of the items whose condition did."""

    def __init__(self, failed: list[int]) -> None:
        self.failed = failed
        super().__init__(f"conditions failed: {failed}")


@contextmanager
def _dynamodb(call: str) -> Iterator[None]:
    """DynamoDB's errors as the store's."""
    try:
        yield
    except (StoreError, _Cancelled):
        raise
    except Exception as exc:
        if not type(exc).__module__.startswith(("botocore", "boto3")):
            raise
        from core.adapters.aws.errors import error_code, error_message

        code = error_code(exc) or type(exc).__name__
        raise StoreError(f"DynamoDB {call}: {code}: {error_message(exc)}") from None


class DynamoStore:
    """`clients`: core.adapters.aws.AwsClients (the home region's DynamoDB); the table is
    made when missing."""

    # A COUNT query still reads (and is billed for) every matching index entry.
    counts_cheaply = False

    def __init__(self, clients: Any, table: str) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.table = table
        self._db = clients.client("dynamodb")
        self._to = TypeSerializer()
        self._from = TypeDeserializer()
        self._ensure_table()

    def _ensure_table(self) -> None:
        db = self._db
        try:
            with _dynamodb("DescribeTable"):
                db.describe_table(TableName=self.table)
            return
        except StoreError as exc:
            if "ResourceNotFoundException" not in str(exc):
                raise
        with _dynamodb("CreateTable"):
            with suppress(db.exceptions.ResourceInUseException):  # another process made it
                db.create_table(**table_definition(self.table))
            db.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )

    def close(self) -> None:
        pass  # boto3's clients hold no resource that needs closing

    # ------------------------------------------------------------ items

    def _item(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self._to.serialize(v) for k, v in values.items()}

    def _plain(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._from.deserialize(v) for k, v in item.items()}

    def _key(self, pk: str, sk: str = "-") -> dict[str, Any]:
        return self._item({"pk": pk, "sk": sk})

    def _get(self, pk: str, sk: str = "-") -> dict[str, Any] | None:
        with _dynamodb("GetItem"):
            found = self._db.get_item(
                TableName=self.table, Key=self._key(pk, sk), ConsistentRead=True
            )
        return self._plain(found["Item"]) if "Item" in found else None

    def _put(self, values: dict[str, Any], condition: str | None = None, **extra: Any) -> bool:
        """PutItem; False when `condition` failed."""
        args: dict[str, Any] = {"TableName": self.table, "Item": self._item(values)}
        if condition:
            args["ConditionExpression"] = condition
        args.update(extra)
        try:
            with _dynamodb("PutItem"):
                self._db.put_item(**args)
        except StoreError as exc:
            if "ConditionalCheckFailed" in str(exc):
                return False
            raise
        return True

    def _query(
        self,
        condition: str,
        values: dict[str, Any],
        index: str | None = None,
        forward: bool = True,
        filter: str | None = None,
        names: dict[str, str] | None = None,
        limit: int | None = None,
        select: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every item (or, with select="COUNT", every page's count as {"Count": n}) the query
        matches, page by page."""
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": self._item(values),
            "ScanIndexForward": forward,
        }
        if index is not None:
            args["IndexName"] = index
        else:
            args["ConsistentRead"] = True
        if filter:
            args["FilterExpression"] = filter
        if names:
            args["ExpressionAttributeNames"] = names
        if limit is not None:
            args["Limit"] = limit
        if select is not None:
            args["Select"] = select
        while True:
            with _dynamodb("Query"):
                page = self._db.query(**args)
            if select == "COUNT":
                yield {"Count": page["Count"]}
            else:
                yield from (self._plain(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ------------------------------------------------------------ transactions

    def _seq(self) -> int:
        found = self._get(_SEQ["pk"])
        return int(found["n"]) if found else 0

    def _seq_update(self, now: int) -> dict[str, Any]:
        condition = "attribute_not_exists(n) OR n = :now" if now == 0 else "n = :now"
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._key(_SEQ["pk"]),
                "UpdateExpression": "SET n = :next",
                "ConditionExpression": condition,
                "ExpressionAttributeValues": self._item({":now": now, ":next": now + 1}),
            }
        }

    def _transact(self, build: Callable[[int | None], list[dict[str, Any]]], ordered: bool) -> None:
        """Write the items `build(seq)` gives in one transaction. `ordered`: they take the
        sequence's next number (`seq`; None otherwise), retried while others take it first.
        Raises _Cancelled with the indexes of `build`'s items whose conditions failed."""
        for attempt in range(_TRIES):
            now = self._seq() if ordered else None
            items = build(None if now is None else now + 1)
            if now is not None:
                items.append(self._seq_update(now))
            with _dynamodb("TransactWriteItems"):
                try:
                    self._db.transact_write_items(TransactItems=items)
                    return
                except self._db.exceptions.TransactionCanceledException as exc:
                    reasons = exc.response.get("CancellationReasons") or []
                    codes = [str(r.get("Code", "None")) for r in reasons]
                    built = len(items) - (now is not None)  # the sequence's update is last
                    failed = [
                        i for i, c in enumerate(codes[:built]) if c == "ConditionalCheckFailed"
                    ]
                    if failed:
                        raise _Cancelled(failed) from None
                    # The sequence moved on, or another transaction held one of the items
                    # (TransactionConflict): take the next number and try again.
                except self._db.exceptions.TransactionConflictException:
                    pass
            time.sleep(random.uniform(0, min(0.05, 0.002 * (attempt + 1))))
        raise StoreError("DynamoDB TransactWriteItems: busy: too many writers at once")

    def _put_op(self, values: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
        op: dict[str, Any] = {"TableName": self.table, "Item": self._item(values)}
        if condition:
            op["ConditionExpression"] = condition
        return {"Put": op}

    def _audit_op(self, record: AuditRecord, seq: int) -> dict[str, Any]:
        return self._put_op(audit_item(record, seq))

    def _feed_op(self, entry: FeedEntry, seq: int) -> dict[str, Any]:
        return self._put_op(feed_item(entry.model_dump_json(exclude={"seq"}), seq))

    # ------------------------------------------------------------ deployments

    def _lock_op(self, name: str, d: Deployment, shared: bool) -> dict[str, Any]:
        update = "SET #h = :holder, n = if_not_exists(n, :zero) + :one"
        values: dict[str, Any] = {
            ":holder": {"by": d.requested_by, "shared": shared},
            ":zero": 0,
            ":one": 1,
        }
        if shared:  # shared goes with shared
            condition = "attribute_not_exists(excl)"
        else:  # anything else waits for every holder to end
            condition = "attribute_not_exists(n) OR n = :zero"
            update += ", excl = :id"
            values[":id"] = d.id
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._key(f"lock#{name}"),
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#h": f"h:{d.id}"},
                "ExpressionAttributeValues": self._item(values),
            }
        }

    def _release_op(self, name: str, deployment_id: str, shared: bool) -> dict[str, Any]:
        update = "SET n = n - :one REMOVE #h" + ("" if shared else ", excl")
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._key(f"lock#{name}"),
                "UpdateExpression": update,
                "ConditionExpression": "attribute_exists(#h)",
                "ExpressionAttributeNames": {"#h": f"h:{deployment_id}"},
                "ExpressionAttributeValues": self._item({":one": 1}),
            }
        }

    def _busy(self, name: str, shared: bool) -> Busy:
        lock = self._get(f"lock#{name}") or {}
        holders = {k[2:]: v for k, v in lock.items() if k.startswith("h:")}
        holder = str(lock.get("excl") or next(iter(sorted(holders)), "?"))
        by = str((holders.get(holder) or {}).get("by", "?"))
        return Busy(name, holder, by)

    def create(
        self, d: Deployment, locks: list[str], audit: AuditRecord, shared: Sequence[str] = ()
    ) -> Deployment:
        d = d.model_copy(update={"rev": 1})
        wanted = [(name, False) for name in locks] + [(name, True) for name in shared]
        entry = entry_between(None, d)

        def build(seq: int | None) -> list[dict[str, Any]]:
            assert seq is not None
            items = [self._put_op(deployment_item(d), "attribute_not_exists(pk)")]
            items += [self._lock_op(name, d, is_shared) for name, is_shared in wanted]
            items.append(self._put_op(held_locks_item(d.id, wanted)))
            items.append(self._audit_op(audit, seq))
            if entry is not None:
                items.append(self._feed_op(entry, seq))
            return items

        try:
            self._transact(build, ordered=True)
        except _Cancelled as exc:
            for index in exc.failed:
                if 1 <= index <= len(wanted):
                    raise self._busy(*wanted[index - 1]) from None
            raise StoreError(f"{d.id} exists already") from None
        return d

    def save(
        self, d: Deployment, audit: AuditRecord | None = None, entry: FeedEntry | None = None
    ) -> Deployment:
        new = d.model_copy(update={"rev": d.rev + 1})
        release: list[list[Any]] = []
        if not new.active:
            stored = self._get(f"dep#{d.id}")
            if stored is None or int(stored["rev"]) != d.rev:
                raise Conflict(f"{d.id} was changed by someone else (revision {d.rev} is stale)")
            if int(stored["active"]):  # this save ends it: its locks and lease go with it
                release = list((self._get(f"dep#{d.id}", "locks") or {}).get("locks", []))

        def build(seq: int | None) -> list[dict[str, Any]]:
            put = self._put_op(deployment_item(new), "rev = :rev")
            put["Put"]["ExpressionAttributeValues"] = self._item({":rev": d.rev})
            items = [put]
            items += [self._release_op(name, d.id, bool(shared)) for name, shared in release]
            if not new.active:
                lease = {"TableName": self.table, "Key": self._key(f"lease#{d.id}")}
                items.append({"Delete": lease})
            if seq is not None and audit is not None:
                items.append(self._audit_op(audit, seq))
            if seq is not None and entry is not None:
                items.append(self._feed_op(entry.model_copy(update={"rev": new.rev}), seq))
            return items

        try:
            self._transact(build, ordered=audit is not None or entry is not None)
        except _Cancelled as exc:
            if 0 in exc.failed:
                raise Conflict(
                    f"{d.id} was changed by someone else (revision {d.rev} is stale)"
                ) from None
            raise StoreError(f"{d.id}: its locks are not as it left them") from None
        return new

    def insert_deployments(self, deployments: Iterable[Deployment]) -> None:
        """Write deployments as they are, without locks, audit or feed entries: a copy of
        records kept elsewhere (tests, a move of state). Not one transaction: a copy
        interrupted is made again."""
        self.write_items(deployment_item(d) for d in deployments)

    def write_items(self, items: Iterable[dict[str, Any]]) -> int:
        """Put `items` (plain values, keys included) as they are, 25 to a request; how many.
        For copies of state only (core.store.migrate): nothing here keeps the store's rules."""
        puts = [{"PutRequest": {"Item": self._item(i)}} for i in items]
        for start in range(0, len(puts), _BATCH_WRITE):
            request: dict[str, Any] = {self.table: puts[start : start + _BATCH_WRITE]}
            while request:
                with _dynamodb("BatchWriteItem"):
                    answer = self._db.batch_write_item(RequestItems=request)
                request = answer.get("UnprocessedItems") or {}
        return len(puts)

    def claim_for_copy(self, source: str) -> None:
        """Mark the table as the copy of `source` under way; refuses (StoreError) a table
        that holds other state, or a finished copy. A copy interrupted is claimed again."""
        marker = {"pk": "copy", "sk": "-", "source": source, "done": False}
        condition = "attribute_not_exists(pk) OR (#s = :s AND done = :no)"
        fresh = {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": self._key(_SEQ["pk"]),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        claim = self._put_op(marker, condition)
        claim["Put"]["ExpressionAttributeNames"] = {"#s": "source"}
        claim["Put"]["ExpressionAttributeValues"] = self._item({":s": source, ":no": False})
        with _dynamodb("TransactWriteItems"):
            try:
                self._db.transact_write_items(TransactItems=[fresh, claim])
                return
            except self._db.exceptions.TransactionCanceledException:
                pass
        copy = self._get("copy")
        if copy is None:
            raise StoreError(f"table {self.table} holds mmm state already")
        done = "a finished copy" if copy.get("done") else "the copy under way"
        raise StoreError(f"table {self.table} holds {done} of {copy['source']}")

    def finish_copy(self, source: str, seq: int) -> None:
        """The copy of `source` is whole: the sequence goes on from `seq`, and the table is
        the store's from now on."""
        start = {"pk": _SEQ["pk"], "sk": "-", "n": seq}
        done = {"pk": "copy", "sk": "-", "source": source, "done": True}
        with _dynamodb("TransactWriteItems"):
            self._db.transact_write_items(
                TransactItems=[self._put_op(start, "attribute_not_exists(pk)"), self._put_op(done)]
            )

    def _load(self, item: dict[str, Any]) -> Deployment:
        columns = {k: item.get(k) for k in SUMMARY}
        columns["rev"] = int(columns["rev"] or 0)
        return load_record(unpack(item["body"]), columns)

    def get(self, deployment_id: str) -> Deployment | None:
        found = self._get(f"dep#{deployment_id}")
        return self._load(found) if found else None

    def _bodies(self, ids: list[str]) -> list[Deployment]:
        """The deployments of `ids`, in that order (strongly consistent reads)."""
        found: dict[str, Deployment] = {}
        for start in range(0, len(ids), _BATCH_GET):
            keys = [self._key(f"dep#{i}") for i in ids[start : start + _BATCH_GET]]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                with _dynamodb("BatchGetItem"):
                    answer = self._db.batch_get_item(RequestItems=request)
                for raw in answer.get("Responses", {}).get(self.table, []):
                    item = self._plain(raw)
                    found[str(item["id"])] = self._load(item)
                request = answer.get("UnprocessedKeys") or {}
        return [found[i] for i in ids if i in found]

    def find(self, prefix: str) -> list[Deployment]:
        found = self._query(
            "lk = :d AND begins_with(id, :p)", {":d": LISTED, ":p": prefix}, index="ids"
        )
        return self._bodies([str(i["id"]) for i in found])

    def recent(self, active_only: bool = False, limit: int = 200) -> list[Deployment]:
        if active_only:
            condition, values, index = (
                "lk = :d AND begins_with(lsort, :a)",
                {":d": LISTED, ":a": "1#"},
                "listing",
            )
        else:
            condition, values, index = "lk = :d", {":d": LISTED}, "recent"
        ids = []
        for item in self._query(condition, values, index=index, forward=False, limit=limit):
            ids.append(str(item["id"]))
            if len(ids) >= limit:
                break
        return self._bodies(ids)

    def _listing(self, query: DeploymentQuery) -> dict[str, Any] | None:
        """The Query arguments of `query` (None: it matches nothing). One filter leads, the
        first given of endpoint, model, a single state and kind: its index gives the page in
        order; the others filter what it finds."""
        states = query.wanted_states()
        if states is not None and not states:
            return None
        equal: dict[str, Any] = {
            "endpoint": query.endpoint,
            "model": query.model,
            "state": next(iter(states)).value if states is not None and len(states) == 1 else None,
            "kind": query.kind.value if query.kind is not None else None,
        }
        leader = next((c for c, v in equal.items() if v is not None), None)
        names = {"#lead": leader or "lk"}
        values: dict[str, Any] = {":lead": equal[leader] if leader else LISTED}
        condition = "#lead = :lead"
        if states is not None and len({s.terminal for s in states}) == 1:
            # the state decides `active`: the listing order's first part is a range
            condition += " AND begins_with(lsort, :active)"
            values[":active"] = f"{int(not next(iter(states)).terminal)}#"
        filters = []
        for column, value in equal.items():
            if value is not None and column != leader:
                names[f"#{column}"] = column
                values[f":{column}"] = value
                filters.append(f"#{column} = :{column}")
        if states is not None and len(states) > 1:
            names["#state"] = "state"
            marks = []
            for i, state in enumerate(sorted(s.value for s in states)):
                values[f":s{i}"] = state
                marks.append(f":s{i}")
            filters.append(f"#state IN ({', '.join(marks)})")
        if query.text:
            values[":text"] = query.text.lower()
            names["#search"] = "search"
            filters.append("contains(#search, :text)")
        index = f"by_{leader}" if leader else "listing"
        return {
            "condition": condition,
            "values": values,
            "index": index,
            "names": names,
            "filter": " AND ".join(filters) or None,
        }

    def deployments(self, query: DeploymentQuery) -> list[Deployment]:
        args = self._listing(query)
        if args is None:
            return []
        wanted = query.offset + query.limit
        ids: list[str] = []
        for item in self._query(forward=False, limit=min(wanted, 1000), **args):
            ids.append(str(item["id"]))
            if len(ids) >= wanted:
                break
        return self._bodies(ids[query.offset :])

    def count(self, query: DeploymentQuery) -> int:
        args = self._listing(query)
        if args is None:
            return 0
        return sum(p["Count"] for p in self._query(select="COUNT", **args))

    def runnable(self, now: float) -> list[str]:
        if math.isinf(now):  # every one due some day (DynamoDB holds no infinity)
            due = self._query("due_k = :d", {":d": LISTED}, "due")
        else:
            due = self._query(
                "due_k = :d AND due <= :now", {":d": LISTED, ":now": number(now)}, "due"
            )
        return [str(i["id"]) for i in sorted(due, key=lambda i: (i["created_at"], i["id"]))]

    def next_due(self) -> float | None:
        for item in self._query("due_k = :d", {":d": LISTED}, index="due", limit=1):
            return float(item["due"])
        return None

    # ------------------------------------------------------------ the change feed

    def changes_since(self, cursor: int, limit: int = 500) -> list[FeedEntry]:
        found = []
        for item in self._query(
            "pk = :f AND sk > :c", {":f": "feed", ":c": seq_key(cursor)}, limit=limit
        ):
            entry = FeedEntry.model_validate_json(item["body"])
            found.append(entry.model_copy(update={"seq": int(item["sk"])}))
            if len(found) >= limit:
                break
        return found

    def last_change(self) -> int:
        for item in self._query("pk = :f", {":f": "feed"}, forward=False, limit=1):
            return int(item["sk"])
        return 0

    def cursor(self, consumer: str) -> int:
        found = self._get("cursors", consumer)
        return int(found["seq"]) if found else 0

    def set_cursor(self, consumer: str, seq: int) -> None:
        self._put(cursor_item(consumer, seq))

    def delivery(self, consumer: str, deployment_id: str) -> dict[str, Any] | None:
        found = self._get(f"delivery#{consumer}", deployment_id)
        return dict(json.loads(found["body"])) if found else None

    def set_delivery(self, consumer: str, deployment_id: str, data: dict[str, Any]) -> None:
        self._put(delivery_item(consumer, deployment_id, data))

    # ------------------------------------------------------------ leases

    def acquire_lease(self, deployment_id: str, owner: str, ttl_s: float, now: float) -> bool:
        return self._put(
            {
                "pk": f"lease#{deployment_id}",
                "sk": "-",
                "owner": owner,
                "expires": number(now + ttl_s),
            },
            "attribute_not_exists(pk) OR #o = :o OR expires < :now",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues=self._item({":o": owner, ":now": number(now)}),
        )

    def release_lease(self, deployment_id: str, owner: str) -> None:
        try:
            with _dynamodb("DeleteItem"):
                self._db.delete_item(
                    TableName=self.table,
                    Key=self._key(f"lease#{deployment_id}"),
                    ConditionExpression="#o = :o",
                    ExpressionAttributeNames={"#o": "owner"},
                    ExpressionAttributeValues=self._item({":o": owner}),
                )
        except StoreError as exc:
            if "ConditionalCheckFailed" not in str(exc):
                raise

    # ------------------------------------------------------------ command log

    def command_result(self, key: str) -> dict[str, Any] | None:
        found = self._get(f"cmd#{key}")
        return dict(json.loads(unpack(found["result"]))) if found else None

    def record_command(self, key: str, deployment_id: str, result: dict[str, Any], at: str) -> None:
        self._put(command_item(key, deployment_id, result, at), "attribute_not_exists(pk)")

    def remember(
        self, key: str, deployment_id: str, compute: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        found = self._get(f"intent#{key}")
        if found is None:
            item = intent_item(key, deployment_id, compute())
            self._put(item, "attribute_not_exists(pk)")
            found = self._get(f"intent#{key}")  # the first to write wins
            assert found is not None
        return dict(json.loads(unpack(found["body"])))

    # ------------------------------------------------------------ audit

    def audit(self, record: AuditRecord) -> None:
        def build(seq: int | None) -> list[dict[str, Any]]:
            assert seq is not None
            return [self._audit_op(record, seq)]

        self._transact(build, ordered=True)

    def audit_log(
        self, target: str | None = None, limit: int = 500, offset: int = 0
    ) -> list[AuditRecord]:
        if target:
            found = self._query("target = :t", {":t": target}, "audit_target", forward=False)
        else:
            found = self._query("pk = :a", {":a": "audit"}, forward=False)
        records = []
        for item in found:
            records.append(
                AuditRecord(
                    at=item["at"],
                    actor=item["actor"],
                    action=item["action"],
                    target=item["target"],
                    detail=json.loads(item["detail"]),
                )
            )
            if len(records) >= offset + limit:
                break
        return records[offset:]

    # ------------------------------------------------------------ the usage index

    def replace_usage(self, model: str, sites: list[UsageSite]) -> None:
        strangers = sorted({s.model for s in sites} - {model})
        if strangers:
            raise ValueError(f"usage sites of {', '.join(strangers)} given as sites of {model}")
        # one item per model: replacing it is one write, so a reader sees the old or the new
        self._put(usage_item(model, sites))

    def usage_index(
        self, model: str | None = None, offset: int = 0, limit: int = 500
    ) -> list[UsageSite]:
        if model is not None:
            found = self._get("usage", model)
            items = [found] if found else []
        else:
            items = list(self._query("pk = :u", {":u": "usage"}))  # by model name
        sites: list[UsageSite] = []
        for item in items:
            sites += [UsageSite.model_validate(s) for s in json.loads(unpack(item["body"]))]
            if len(sites) >= offset + limit:
                break
        return sites[offset : offset + limit]

    # ------------------------------------------------------------ workers

    def heartbeat(self, worker: str, now: float) -> None:
        self._put({"pk": "workers", "sk": worker, "seen": number(now)})

    def forget_worker(self, worker: str) -> None:
        with _dynamodb("DeleteItem"):
            self._db.delete_item(TableName=self.table, Key=self._key("workers", worker))

    def live_workers(self, now: float, within_s: float) -> list[str]:
        found = self._query(
            "pk = :w", {":w": "workers", ":since": number(now - within_s)}, filter="seen >= :since"
        )
        return [str(i["sk"]) for i in found]
