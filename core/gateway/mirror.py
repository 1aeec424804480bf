"""Shadow mirroring: answer with the shadow too, pair the answers, capture the pairs.

`run_mirror` asks the shadow for one request, timed: the path of
`LocalServing.replay` and of the first request of each batch of live traffic;
`run_mirror_batch` asks it for the others of a batch in one call, untimed.
`MirrorPool` keeps shadow work off the caller's path: a bounded queue and a
few threads; when the queue is full the request is not mirrored (counted),
so a slow shadow can neither grow memory nor slow production.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from core.gateway.aggregates import SHADOW
from core.gateway.capture import CaptureWriter
from core.gateway.predictors import LoadedVariant, Outcome, predict_timed
from core.ports import CapturedPair

if TYPE_CHECKING:  # prometheus_client loads with the gateway, not with every replay
    from core.gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MirrorJob:
    """A request production answered (or failed), to be sent to the shadow."""

    request_id: str
    region: str
    endpoint: str
    instances: list[Any]
    production_variant: str
    production: Outcome
    shadow: LoadedVariant
    timeout_ms: float


def pair_id(request_id: str, index: int, count: int) -> str:
    """A request of several instances gives one pair per instance: `<id>#<index>`."""
    return request_id if count == 1 else f"{request_id}#{index}"


def make_pairs(job: MirrorJob, shadow: Outcome, shadow_ms: float | None) -> list[CapturedPair]:
    count = len(job.instances)
    prod, shad = job.production, shadow
    return [
        CapturedPair(
            request_id=pair_id(job.request_id, i, count),
            input=instance,
            production=None if prod.outputs is None else prod.outputs[i],
            shadow=None if shad.outputs is None else shad.outputs[i],
            production_variant=job.production_variant,
            shadow_variant=job.shadow.name,
            production_ms=prod.ms,
            shadow_ms=shadow_ms,
            production_error=prod.error,
            shadow_error=shad.error,
        )
        for i, instance in enumerate(job.instances)
    ]


def run_mirror(
    job: MirrorJob, sink: CaptureWriter, metrics: GatewayMetrics | None = None
) -> list[CapturedPair]:
    """Ask the shadow, record its call, capture the pairs; never raises for a model fault."""
    shadow = predict_timed(job.shadow, job.instances, job.timeout_ms)
    if metrics is not None:
        metrics.observe(job.region, job.endpoint, job.shadow.name, SHADOW, shadow.ms, shadow.failed)
    pairs = make_pairs(job, shadow, shadow.ms)
    sink.write(job.region, job.endpoint, job.shadow.name, pairs)
    return pairs


def run_mirror_batch(
    jobs: list[MirrorJob], sink: CaptureWriter, metrics: GatewayMetrics | None = None
) -> list[CapturedPair]:
    """Jobs of one shadow in one model call: their outputs and errors, not their latency.

    A call of many rows costs the shadow's CPU a fraction of one call per row (a Ridge
    model: 20 rows in 1.3 times one row's time), but its time is not one request's: these
    pairs carry no shadow latency (the analysis reads latency where it was measured) and
    the metrics count them without one. When the call fails or outlasts one request's
    timeout, each job is asked alone instead, so every error, refusal and timeout is that
    request's own.
    """
    first = jobs[0]
    instances = [x for job in jobs for x in job.instances]
    shadow = predict_timed(first.shadow, instances, first.timeout_ms)
    if shadow.outputs is None:
        return [pair for job in jobs for pair in run_mirror(job, sink, metrics)]
    pairs: list[CapturedPair] = []
    start = 0
    for job in jobs:
        end = start + len(job.instances)
        own = Outcome(shadow.outputs[start:end], None, shadow.ms)
        pairs.extend(make_pairs(job, own, None))
        if metrics is not None:
            metrics.observe(job.region, job.endpoint, job.shadow.name, SHADOW, None, False)
        start = end
    sink.write(first.region, first.endpoint, first.shadow.name, pairs)
    return pairs


def _by_shadow(jobs: list[MirrorJob]) -> list[list[MirrorJob]]:
    """The jobs grouped by the shadow they go to (one loaded model), in arrival order."""
    groups: dict[tuple[str, str, int], list[MirrorJob]] = {}
    for job in jobs:
        groups.setdefault((job.region, job.endpoint, id(job.shadow)), []).append(job)
    return list(groups.values())


class MirrorPool:
    """Worker threads taking mirror jobs from a bounded queue, a batch at a time.

    A worker woken by a job first waits `window_s` for more, then asks each
    shadow twice per batch: its first job alone, timed (the shadow's latency,
    as true as production's), and the others in one model call
    (`run_mirror_batch`), letting a waiting request take the interpreter
    between calls. One wake-up and two calls per batch instead of a call per
    request cost the shadow a fraction of the CPU, and its work meets a few
    requests instead of every one.

    A batch's other requests go to the shadow `requests_per_call` at a time: under
    heavy traffic a batch may hold `max_batch`, and one call of them all would hold the
    interpreter as long.

    With `idle` (set while no production request is being served), each call
    first waits for it, at most `idle_wait_s`: a shadow call started while a
    request is served would hold the interpreter the request needs. Under
    steady load the wait runs out and the shadow goes on; the bounded queue
    still drops what it cannot keep up with.
    """

    def __init__(
        self,
        sink: CaptureWriter,
        metrics: GatewayMetrics | None = None,
        workers: int = 2,
        queue_size: int = 1000,
        window_s: float = 0.02,
        max_batch: int = 64,
        idle: threading.Event | None = None,
        idle_wait_s: float = 0.02,
        requests_per_call: int = 20,
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self._window_s = window_s
        self._idle = idle
        self._idle_wait_s = idle_wait_s
        self._max_batch = max_batch
        self._requests_per_call = requests_per_call
        self._queue: queue.Queue[MirrorJob | None] = queue.Queue(maxsize=queue_size)
        self._closing = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"mmm-mirror-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: MirrorJob) -> bool:
        """Queue the job; False (and counted) when the queue is full or the pool closed."""
        accepted = not self._closing.is_set()
        if accepted:
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                accepted = False
        if self._metrics is not None:
            counter = self._metrics.mirrored if accepted else self._metrics.mirror_dropped
            counter.labels(job.region, job.endpoint, job.shadow.name).inc()
        return accepted

    def close(self, timeout_s: float = 10.0) -> int:
        """Finish the queued jobs (waiting at most `timeout_s`); returns how many were dropped."""
        self._closing.set()
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        dropped = 0
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            self._queue.task_done()
            if job is not None:
                dropped += 1
                if self._metrics is not None:
                    self._metrics.mirror_dropped.labels(
                        job.region, job.endpoint, job.shadow.name
                    ).inc()
        for _ in self._threads:
            # A thread still inside a slow shadow call is left behind (a daemon) at the deadline.
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=max(0.01, deadline - time.monotonic()))
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if dropped:
            log.warning("shadow mirror stopped with %d requests not mirrored", dropped)
        return dropped

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            if self._window_s > 0:
                self._closing.wait(self._window_s)
            batch, last = [first], False
            while len(batch) < self._max_batch and not last:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._queue.task_done()
                    last = True
                else:
                    batch.append(job)
            for group in _by_shadow(batch):
                # the first alone, timed: the shadow's latency; the rest in a few calls
                first, rest = group[0], group[1:]
                self._call([first], partial(run_mirror, first, self._sink, self._metrics))
                for start in range(0, len(rest), self._requests_per_call):
                    part = rest[start : start + self._requests_per_call]
                    self._call(part, partial(run_mirror_batch, part, self._sink, self._metrics))
            if last:
                return

    def _call(self, jobs: list[MirrorJob], run: Callable[[], object]) -> None:
        if self._idle is not None:
            self._idle.wait(self._idle_wait_s)
        try:
            run()
        except Exception:
            names = ", ".join(job.request_id for job in jobs)
            log.exception("mirroring %s to %s failed", names, jobs[0].shadow.name)
        finally:
            for _ in jobs:
                self._queue.task_done()
        time.sleep(0)  # let a request waiting for the interpreter have it
