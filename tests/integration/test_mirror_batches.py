"""The shadow mirror asks each shadow twice per batch: the first request alone and timed, the
others in one model call whose outputs are split back to their requests, untimed.

Each test queues its jobs before the pool's worker may form a batch: the worker's window is
long and closing the pool ends it, so the batch holds every job, on any machine."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from core.domain import Library
from core.gateway.aggregates import METRICS_DB, SHADOW, AggregateRecorder, read_window
from core.gateway.capture import CaptureWriter, captures_root
from core.gateway.metrics import GatewayMetrics
from core.gateway.mirror import MirrorJob, MirrorPool
from core.gateway.predictors import LoadedVariant, Outcome
from core.ports import CapturedPair, InvalidInput, Variant

REGION = "local"


class Doubler:
    """Answers 2x per instance, notes the size of each call; refuses an instance "bad"."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay_s = delay_s

    def predict(self, instances: list[Any]) -> list[Any]:
        self.calls.append(len(instances))
        time.sleep(self.delay_s)
        if any(x == ["bad"] for x in instances):
            raise InvalidInput("feature 0: expected a number")
        return [2 * x[0] for x in instances]


def loaded(model: Doubler) -> LoadedVariant:
    shadow = Variant(
        name="churn-v2", model="churn", version=2, artifact="file:///unused",
        library=Library.SKLEARN, weight=0,
    )  # fmt: skip
    return LoadedVariant(shadow, model)


def job(n: int, shadow: LoadedVariant, instances: list[Any], timeout_ms: float = 1e6) -> MirrorJob:
    production = Outcome([0.0] * len(instances), None, 1.0)
    return MirrorJob(
        f"req-{n}", REGION, "churn", instances, "churn-v1", production, shadow, timeout_ms
    )


def mirrored(home: Path, jobs: list[MirrorJob], metrics: GatewayMetrics | None = None) -> None:
    pool = MirrorPool(CaptureWriter(captures_root(home)), metrics, workers=1, window_s=600)
    for j in jobs:
        assert pool.submit(j)
    assert pool.close(timeout_s=600) == 0  # closing ends the window: one batch of all


def captured(home: Path) -> dict[str, CapturedPair]:
    from core.adapters.local.serving import LocalServing

    return {p.request_id: p for p in LocalServing(home).captured("churn", REGION, "churn-v2")}


def test_a_batch_is_one_timed_call_and_one_call_for_the_rest(tmp_path: Path) -> None:
    home = tmp_path
    model = Doubler()
    shadow = loaded(model)
    jobs = [job(0, shadow, [[1.0]]), job(1, shadow, [[2.0], [3.0]]), job(2, shadow, [[4.0]])]
    recorder = AggregateRecorder(home / METRICS_DB, flush_s=600)
    recorder.start()
    metrics = GatewayMetrics(recorder)
    mirrored(home, jobs, metrics)
    recorder.close()

    assert model.calls == [1, 3]
    pairs = captured(home)
    assert {k: p.shadow for k, p in pairs.items()} == {
        "req-0": 2.0, "req-1#0": 4.0, "req-1#1": 6.0, "req-2": 8.0,
    }  # fmt: skip
    assert pairs["req-0"].shadow_ms is not None  # the call alone: its time is a request's
    assert [pairs[k].shadow_ms for k in ("req-1#0", "req-1#1", "req-2")] == [None] * 3
    assert all(p.shadow_error is None for p in pairs.values())

    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(metrics.text().decode())
        for s in family.samples
        if s.labels.get("variant") == "churn-v2" and s.labels.get("role") == SHADOW
    }
    assert samples["mmm_requests_total"] == 3  # every request counted,
    assert samples["mmm_latency_seconds_count"] == 1  # only the timed one's latency
    window = read_window(
        sqlite3.connect(home / METRICS_DB), REGION, "churn", "churn-v2", SHADOW, 0, 2**40
    )
    assert (window.requests, sum(window.buckets.values())) == (3, 1)


def test_a_refused_instance_sends_each_request_of_the_batch_alone(tmp_path: Path) -> None:
    home = tmp_path
    model = Doubler()
    shadow = loaded(model)
    jobs = [job(0, shadow, [[1.0]]), job(1, shadow, [[2.0]]), job(2, shadow, [["bad"]])]
    jobs.append(job(3, shadow, [[5.0]]))
    mirrored(home, jobs)

    assert model.calls == [1, 3, 1, 1, 1]  # the batch refused, then each of its requests
    pairs = captured(home)
    assert [pairs[f"req-{n}"].shadow for n in range(4)] == [2.0, 4.0, None, 10.0]
    assert [pairs[f"req-{n}"].shadow_error is None for n in range(4)] == [True, True, False, True]
    assert all(p.shadow_ms is not None for p in pairs.values())  # each timed on its own


def test_a_batch_slower_than_one_requests_timeout_sends_each_alone(tmp_path: Path) -> None:
    home = tmp_path
    """A request's timeout bounds a call of one request: a batch that outlasts it proves
    nothing about each request, which is then asked alone and judged on its own time."""
    model = Doubler(delay_s=0.2)
    shadow = loaded(model)
    jobs = [job(n, shadow, [[float(n)]], timeout_ms=50) for n in range(3)]
    mirrored(home, jobs)

    assert model.calls == [1, 2, 1, 1]
    pairs = captured(home)
    assert len(pairs) == 3
    for pair in pairs.values():  # 200 ms each against 50 ms allowed
        assert pair.shadow is None and pair.shadow_error is not None
        assert "did not answer within 50 ms" in pair.shadow_error


def test_requests_for_two_shadows_are_batched_apart(tmp_path: Path) -> None:
    home = tmp_path
    first, second = Doubler(), Doubler()
    a, b = loaded(first), loaded(second)
    jobs = [job(0, a, [[1.0]]), job(1, b, [[1.0]]), job(2, a, [[2.0]]), job(3, b, [[3.0]])]
    jobs += [job(4, a, [[4.0]])]
    mirrored(home, jobs)

    assert first.calls == [1, 2] and second.calls == [1, 1]
    assert {k: p.shadow for k, p in captured(home).items()} == {
        "req-0": 2.0, "req-1": 2.0, "req-2": 4.0, "req-3": 6.0, "req-4": 8.0,
    }  # fmt: skip


def test_the_worker_finishes_a_batch_while_requests_keep_coming(tmp_path: Path) -> None:
    home = tmp_path
    """Jobs queued while a batch runs make the next batch; none is lost or run twice."""
    model = Doubler()
    shadow = loaded(model)
    pool = MirrorPool(CaptureWriter(captures_root(home)), workers=2, window_s=0.001)
    threads = [
        threading.Thread(
            target=lambda k=k: [pool.submit(job(k * 100 + i, shadow, [[1.0]])) for i in range(50)]
        )
        for k in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pool.close(timeout_s=600) == 0
    assert sum(model.calls) == 150
    assert len(captured(home)) == 150


def test_a_capture_that_cannot_be_written_counts_its_pairs_as_failed(tmp_path: Path) -> None:
    home = tmp_path
    root = captures_root(home)
    root.parent.mkdir(parents=True)
    root.write_text("a file where the captures folder should be")
    failed: list[int] = []
    writer = CaptureWriter(root, on_failed=lambda *args: failed.append(args[-1]))
    shadow = loaded(Doubler())
    pair = CapturedPair(
        request_id="r", input=[1.0], production=0.0, shadow=2.0, production_variant="churn-v1",
        shadow_variant="churn-v2", production_ms=1.0, shadow_ms=None,
    )  # fmt: skip
    assert writer.write(REGION, "churn", shadow.name, [pair, pair]) == 0
    assert failed == [2]


def test_a_large_batch_goes_to_the_shadow_a_few_requests_per_call(tmp_path: Path) -> None:
    home = tmp_path
    model = Doubler()
    shadow = loaded(model)
    pool = MirrorPool(
        CaptureWriter(captures_root(home)), workers=1, window_s=600, requests_per_call=4
    )
    for n in range(11):
        assert pool.submit(job(n, shadow, [[float(n)]]))
    assert pool.close(timeout_s=600) == 0
    assert model.calls == [1, 4, 4, 2]
    assert {k: p.shadow for k, p in captured(home).items()} == {
        f"req-{n}": 2.0 * n for n in range(11)
    }
