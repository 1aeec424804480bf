"""The worker: leases a deployment, runs its pending command, feeds the result back.

Order of writes, so a worker killed at any point resumes without doing
anything twice: (1) the machine's new state, with the commands it wants run,
is saved first; (2) a command's result is written to the command log before
the state that consumes it; (3) handlers are idempotent for the window
between running a command and logging its result.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from core.domain import (
    AuditRecord,
    Command,
    Deployment,
    DeploymentState,
    StepProgress,
    iso,
    utcnow,
)
from core.feed import entry_between
from core.isolation import sweep_scratch
from core.machine import Event, Failed, Start, Succeeded, Waiting, decide
from core.plan import Action
from core.ports import PortError, Ports, TransientError
from core.steps import Done, Executor, NotYet
from core.store import Conflict, Store
from core.usage import sites_of
from core.workspace import Workspace

log = logging.getLogger("mmm.worker")
# The longest wait between two tries of a step whose system does not answer.
_BACKOFF_MAX_S = 300.0

# Fault injection for crash tests: MMM_CRASH_AT="<step>:<point>[@N][,...]" kills this process
# with SIGKILL at that point (the Nth time this process passes it; the first by default).
# Points: after_run (the command ran, its result is not logged yet) and after_log (the
# result is logged, the state that consumes it is not saved yet).
CRASH_ENV = "MMM_CRASH_AT"

Progress = Callable[[Deployment], None]

# Steps (forward or undo) after which a model is used somewhere else: the usage index follows.
CHANGES_USAGE = frozenset(Action) - {
    Action.VALIDATE,
    Action.OPEN_CHANGE,
    Action.RUN_CHECKS,
    Action.BAKE,
    Action.COLLECT,
    Action.ANALYZE,
    Action.SCAN_USAGE,
    Action.GATE,
}


def _crash_points(text: str) -> dict[str, int]:
    """MMM_CRASH_AT's points, each with the time it kills at."""
    points = {}
    for part in (p.strip() for p in text.split(",")):
        if part:
            where, _, nth = part.partition("@")
            points[where] = int(nth) if nth.isdigit() and int(nth) > 0 else 1
    return points


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    # Well inside the liveness window a CLI looks at (core.service.running: 5 s at least).
    _BEAT_S = 1.0

    def __init__(
        self,
        ws: Workspace,
        store: Store,
        ports: Ports,
        name: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        on_change: Progress | None = None,
    ) -> None:
        self.ws = ws
        self.store = store
        self.ports = ports
        self.name = name or worker_name()
        self.clock = clock
        self.sleep = sleep
        self.on_change = on_change
        self.settings = ws.settings.worker
        self.executor = Executor(ws, ports, store, clock)
        self._crash_at = _crash_points(os.environ.get(CRASH_ENV, ""))
        self._passed: dict[str, int] = {}
        self.stopping = threading.Event()  # set: finish the command in hand, start no other
        self._skipped: set[str] = set()  # unreadable records already reported
        self._keeper = LeaseKeeper(
            self._lease, self.settings.lease_s / 3, lambda: self.clock().timestamp()
        )
        sweep_scratch(ws.home)  # scratch of workers killed before they could clean up

    def _crash_point(self, cmd: Command, point: str) -> None:
        if not self._crash_at:
            return
        here = f"{cmd.key.split('/', 2)[-1]}:{point}"
        if here in self._crash_at:
            self._passed[here] = self._passed.get(here, 0) + 1
            if self._passed[here] >= self._crash_at[here]:
                os.kill(os.getpid(), signal.SIGKILL)

    # ------------------------------------------------------------ state changes

    def apply(self, d: Deployment, ev: Event, audit: AuditRecord | None = None) -> Deployment:
        """decide() and save (with what changed, for the feed), deciding again on a fresh copy
        whenever someone saved first. Nobody is notified here: notifications follow the feed
        (core.notify), outside the lease."""
        while True:
            new, _ = decide(d, ev)
            try:
                saved = self.store.save(new, audit, entry_between(d, new))
            except Conflict:
                fresh = self.store.get(d.id)
                assert fresh is not None
                d = fresh
                continue
            if self.on_change is not None:
                self.on_change(saved)
            return saved

    # ------------------------------------------------------------ one command

    def _execute(self, d: Deployment, cmd: Command) -> Event:
        recorded = self.store.command_result(cmd.key)
        now = self.clock()
        if recorded is not None:
            if "error" in recorded:
                return Failed(at=now, command=cmd, error=recorded["error"])
            return Succeeded(at=now, command=cmd, result=recorded["result"])
        try:
            with self._keeper.holding(d.id):
                outcome = self.executor.run(d, cmd)
        except TransientError as exc:
            return self._retry(d, cmd, exc)
        except PortError as exc:
            return self._failed(d, cmd, str(exc))
        except Exception as exc:  # a bug must not leave the deployment half-done: undo it
            log.exception("command %s failed unexpectedly", cmd.key)
            return self._failed(d, cmd, f"internal error: {type(exc).__name__}: {exc}")
        self._crash_point(cmd, "after_run")
        if isinstance(outcome, NotYet):
            return Waiting(
                at=self.clock(), command=cmd, until=outcome.until, progress=outcome.progress
            )
        assert isinstance(outcome, Done)
        self.store.record_command(cmd.key, d.id, {"result": outcome.result}, iso(self.clock()))
        self._crash_point(cmd, "after_log")
        return Succeeded(at=self.clock(), command=cmd, result=outcome.result)

    def _retry(self, d: Deployment, cmd: Command, exc: TransientError) -> Event:
        """Try again later, not now: the worker is free meanwhile, and the deployment shows
        what it waits on. Gives up after `max_attempts` failures in a row."""
        progress = d.context.progress.get(cmd.step) or StepProgress()
        attempt = (progress.attempts or 0) + 1
        if attempt >= self.settings.max_attempts:
            return self._failed(d, cmd, f"{exc} (gave up after {attempt} attempts)")
        delay = min(self.settings.backoff_s * 2 ** (attempt - 1), _BACKOFF_MAX_S)
        if exc.retry_after_s is not None:  # the system said when (a rate limit's reset)
            delay = max(delay, exc.retry_after_s)
        now = self.clock()
        return Waiting(
            at=now,
            command=cmd,
            until=now + timedelta(seconds=delay),
            progress=progress.model_copy(update={"attempts": attempt}),
            retrying=str(exc),
        )

    def _failed(self, d: Deployment, cmd: Command, error: str) -> Event:
        self.store.record_command(cmd.key, d.id, {"error": error}, iso(self.clock()))
        return Failed(at=self.clock(), command=cmd, error=error)

    # ------------------------------------------------------------ one deployment

    def advance(self, deployment_id: str) -> Deployment | None:
        """Run `deployment_id` as far as it can go now. None if another worker holds it."""
        if not self._lease(deployment_id):
            return None
        try:
            while True:
                d = self.store.get(deployment_id)
                if d is None or not d.active:
                    return d
                if d.damaged:  # listed by `mmm status`, ended by `mmm abort`; never guessed at
                    if deployment_id not in self._skipped:
                        log.warning("skipping %s: %s", deployment_id, d.shown_error)
                        self._skipped.add(deployment_id)
                    return d
                if d.state is DeploymentState.QUEUED:
                    d = self.apply(d, Start(at=self.clock()))
                    continue
                if not d.pending:
                    return d  # at a gate
                if d.wake_at and datetime.fromisoformat(d.wake_at) > self.clock():
                    return d
                if self.stopping.is_set():
                    return d
                event = self._execute(d, d.pending[0])
                self.apply(d, event)
                if isinstance(event, Succeeded) and Action(event.command.action) in CHANGES_USAGE:
                    self._index_usage(d.model)
                if not self._lease(deployment_id):
                    return self.store.get(deployment_id)
        finally:
            self.store.release_lease(deployment_id, self.name)

    def _index_usage(self, model: str) -> None:
        """Keep the usage index (what dashboards list) current after a step that changed where
        `model` is used; read from the systems, like `mmm usage`. A worker killed before this
        leaves it stale until the model's next change."""
        try:
            self.store.replace_usage(model, sites_of(self.ports, model))
        except PortError as exc:  # the index is a convenience: the rollout goes on
            log.warning("usage index of %s not updated: %s", model, exc)

    def _lease(self, deployment_id: str) -> bool:
        return self.store.acquire_lease(
            deployment_id, self.name, self.settings.lease_s, self.clock().timestamp()
        )

    def drive(self, deployment_id: str, timeout_s: float | None = None) -> Deployment:
        """Advance one deployment until it ends or waits for a person (inline mode)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            d = self.advance(deployment_id)
            if d is None:  # someone else holds it: watch instead
                d = self.store.get(deployment_id)
                assert d is not None
            if not d.active or (d.state is DeploymentState.WAITING_APPROVAL and not d.pending):
                return d
            if deadline is not None and time.monotonic() >= deadline:
                return d
            self.sleep(self._pause(d))

    def _pause(self, d: Deployment) -> float:
        if d.wake_at:
            left = datetime.fromisoformat(d.wake_at).timestamp() - self.clock().timestamp()
            return max(0.05, min(left, self.settings.poll_s * 4))
        return self.settings.poll_s

    # ------------------------------------------------------------ many deployments

    def run_once(self) -> int:
        """Advance every deployment until it ends or waits for a person, waiting meanwhile for
        what runs outside (checks, bakes, collections); returns how many were advanced."""
        advanced: set[str] = set()
        with self._beating():
            while True:
                for deployment_id in self.store.runnable(self.clock().timestamp()):
                    if self.advance(deployment_id) is not None:
                        advanced.add(deployment_id)
                waiting = [i for i in self.store.runnable(math.inf) if i not in self._skipped]
                if not waiting:
                    return len(advanced)
                self.sleep(self._idle())

    def run_forever(self, stop: threading.Event) -> None:
        self.stopping = stop
        log.info("worker %s started", self.name)
        try:
            with self._beating():
                self._serve(stop)
        finally:
            log.info("worker %s stopped", self.name)

    def _serve(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for deployment_id in self.store.runnable(self.clock().timestamp()):
                if stop.is_set():
                    break
                self.advance(deployment_id)
            stop.wait(self._idle())

    @contextmanager
    def _beating(self) -> Iterator[None]:
        """Heartbeats from a thread of their own while the block runs: a command longer than
        the liveness window (checks, an in-flight endpoint update) must not make this worker
        look dead, or a CLI that sees no live worker runs the queued work itself beside it.
        When the block ends the worker is forgotten at once: a CLI that still saw it alive
        would leave its deployment queued for a worker that is gone."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self._BEAT_S):
                try:
                    self.store.heartbeat(self.name, time.time())
                except Exception as exc:  # the next beat tries again; the work goes on
                    log.warning("worker %s could not write its heartbeat: %s", self.name, exc)

        self.store.heartbeat(self.name, time.time())
        thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self.store.forget_worker(self.name)

    def _idle(self) -> float:
        due = self.store.next_due()
        if due is None:
            return self.settings.poll_s
        return max(0.0, min(self.settings.poll_s, due - self.clock().timestamp()))


class LeaseKeeper:
    """Renews the lease of the deployment whose command is running, every `every_s` of the
    worker's clock, from a thread of its own: a command longer than the lease (a slow
    registry, a large model to check) keeps it, so no other worker takes it over meanwhile."""

    _TICK_S = 0.05  # how often the thread looks at the clock (real time)

    def __init__(
        self, renew: Callable[[str], bool], every_s: float, clock: Callable[[], float]
    ) -> None:
        self._renew = renew
        self._every_s = every_s
        self._clock = clock
        self._held: str | None = None
        self._since = 0.0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, deployment_id: str) -> Iterator[None]:
        """While the block runs, keep the lease of `deployment_id` (just taken by the caller)."""
        with self._lock:
            self._held, self._since = deployment_id, self._clock()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held = None

    def _run(self) -> None:
        while True:
            time.sleep(self._TICK_S)
            with self._lock:
                held, now = self._held, self._clock()
                if held is None or now - self._since < self._every_s:
                    continue
                self._since = now
                if not self._renew(held):
                    log.warning("lost the lease of %s while a command ran", held)
