"""The gateway without HTTP: endpoint configs kept current, routing, timeouts, mirroring.

The Starlette app in `core.gateway.app` only parses and renders; everything a
request goes through lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import numpy as np

from core.gateway.aggregates import METRICS_DB, PRODUCTION, AggregateRecorder
from core.gateway.capture import MAX_LINES, CaptureWriter, captures_root, to_json
from core.gateway.config_store import SERVING_DB, EndpointTable
from core.gateway.metrics import GatewayMetrics
from core.gateway.mirror import MirrorJob, MirrorPool
from core.gateway.predictors import (
    LiveEndpoint,
    LoadedVariant,
    Loader,
    ModelPool,
    Outcome,
    Resolve,
    describe_error,
    first_missing,
    local_resolver,
    predict_timed,
    timeout_outcome,
)
from core.ports import EndpointConfig, InvalidInput, PortError, Variant
from core.strict_json import strict_decoder

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/#-]{1,128}$")


@dataclass(frozen=True)
class GatewayOptions:
    region: str = "local"  # the home region: the one the route without a region serves
    seed: int | None = None  # routing and sampling draws; fixed for reproducible tests
    resolve: Resolve | None = None  # artifact URI -> local file; default: the workspace buckets
    loader: Loader | None = None  # default: core.runtime.load_model_cached
    mirror_workers: int = 2
    mirror_queue: int = 1000
    mirror_window_s: float = 0.02  # shadow work is batched over this window (see MirrorPool)
    capture_max_lines: int = MAX_LINES
    flush_s: float = 0.5  # metrics.db
    # serving.db is read every poll_s, and at once for an unknown endpoint: a changed config
    # is served within poll_s (GET /endpoints and /healthz also look first).
    poll_s: float = 0.2
    drain_timeout_s: float = 10.0  # shadow work still queued at shutdown
    max_body_bytes: int = 16 * 1024 * 1024
    # A variant whose last INLINE_AFTER calls each took under inline_ms is called on the
    # event loop (0: never); see Gateway._predict.
    inline_ms: float = 2.0


# Handing a call to a worker thread costs about 0.2 ms, and on a busy machine a wait for a
# free core: more than a small model's whole call. Such a call runs on the event loop, at a
# price: it cannot be abandoned at the endpoint's timeout. So it runs there only after many
# fast calls in a row, while the timeout is far above them, and the first slow one sends
# the variant's next calls back to a thread.
INLINE_AFTER = 20
INLINE_MARGIN = 50  # the endpoint's timeout is at least this many times inline_ms


@dataclass(frozen=True)
class Answer:
    status: int
    content: bytes
    request_id: str
    variant: str | None = None
    mirror: MirrorJob | None = None  # shadow work to hand over once the caller has its answer


def error_answer(status: int, message: str, request_id: str, variant: str | None = None) -> Answer:
    return Answer(status, json.dumps({"error": message}).encode(), request_id, variant)


# A request nests 3 or 4 levels; json.loads would go on to the recursion limit (~1000).
MAX_JSON_DEPTH = 64
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def _not_a_value(name: str) -> InvalidInput:
    return InvalidInput(f"body is not JSON: {name} is not a JSON value (null is a missing one)")


# Built once: not per request. 1e999 passes (as an infinity): the variant refuses it by feature.
_DECODER = strict_decoder(_not_a_value)


def _depth(brackets: bytes) -> int:
    steps = np.frombuffer(brackets, np.uint8)
    # initial=0: a body whose brackets were all inside one string has none left here
    opened = np.where((steps == ord("[")) | (steps == ord("{")), 1, -1)
    return int(np.cumsum(opened).max(initial=0))


def _nested_too_deep(raw: bytes) -> bool:
    """Whether a body that parsed nests deeper than MAX_JSON_DEPTH: one C-speed pass over it,
    and a sum over its brackets when it has more than the limit."""
    brackets = raw.translate(None, _NOT_BRACKETS)
    if len(brackets) <= MAX_JSON_DEPTH or _depth(brackets) <= MAX_JSON_DEPTH:
        # Closing brackets inside strings could hide some depth here: harmless, json's
        # recursion limit still bounds it.
        return False
    # Brackets inside strings do not nest: count again without the strings.
    return _depth(_JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)) > MAX_JSON_DEPTH


def _too_deep() -> InvalidInput:
    return InvalidInput(f"body nests JSON deeper than {MAX_JSON_DEPTH} levels")


def parse_instances(raw: bytes) -> list[Any]:
    try:
        # What json.loads does with bytes, with a decoder that refuses NaN and Infinity.
        body = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # UnicodeDecodeError too
        raise InvalidInput(f"body is not JSON: {exc}") from None
    if _nested_too_deep(raw):
        raise _too_deep()
    if not isinstance(body, dict) or "instances" not in body:
        raise InvalidInput('body must be a JSON object {"instances": [[...], ...]}')
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise InvalidInput('"instances" must be a non-empty list of inputs')
    return instances


def request_id_from(header: str | None) -> str:
    """The caller's X-Request-Id when it is usable, else a fresh one."""
    if header is not None and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


def describe_variant(loaded: LoadedVariant) -> dict[str, Any]:
    return {
        **loaded.variant.model_dump(mode="json"),
        "loaded": loaded.predictor is not None,
        "error": loaded.error,
    }


class Gateway:
    """Serves the endpoints of every region in `<home>/serving.db`.

    Locally a region is a name: one process serves them all, each endpoint
    under `(region, name)`, its metrics and captures labelled with its region.
    """

    def __init__(self, home: Path, options: GatewayOptions | None = None) -> None:
        self.home = home
        self.options = opts = options or GatewayOptions()
        self.region = opts.region
        self._rng = random.Random(opts.seed)
        self._pool = ModelPool(opts.resolve or local_resolver(home / "buckets"), opts.loader)
        self._recorder = AggregateRecorder(home / METRICS_DB, opts.flush_s)
        self.metrics = GatewayMetrics(self._recorder)
        self._table: EndpointTable | None = None
        self._capture: CaptureWriter | None = None
        self._mirror: MirrorPool | None = None
        self._endpoints: dict[tuple[str, str], LiveEndpoint] = {}  # (region, name)
        self._fast_calls: dict[tuple[str, str, str], int] = {}  # (region, endpoint, variant)
        self._serving = 0  # requests being served now, on the event loop
        self._idle = threading.Event()  # set while none is: shadow calls wait for it
        self._idle.set()
        self._revision = -1
        self._reload_lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self.ready = False

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        self._table = EndpointTable(self.home / SERVING_DB)
        self._recorder.start()
        self._capture = CaptureWriter(
            captures_root(self.home),
            self.options.capture_max_lines,
            on_written=self.metrics.on_captured,
            on_failed=self.metrics.on_capture_failed,
        )
        opts = self.options
        self._mirror = MirrorPool(
            self._capture,
            self.metrics,
            opts.mirror_workers,
            opts.mirror_queue,
            opts.mirror_window_s,
            idle=self._idle,
        )
        await self.refresh()
        self._poller = asyncio.create_task(self._poll())
        self.ready = True

    async def close(self) -> None:
        """Stop polling, finish the shadow work and the captures, flush the metrics."""
        self.ready = False
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await anyio.to_thread.run_sync(self._close_sync)

    def _close_sync(self) -> None:
        if self._mirror is not None:
            self._mirror.close(self.options.drain_timeout_s)
        if self._capture is not None:
            self._capture.close()
        self._recorder.close()
        if self._table is not None:
            self._table.close()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_s)
            await self.refresh_or_keep()

    # ------------------------------------------------------------ configs

    @property
    def revision(self) -> int:
        return self._revision

    async def refresh(self) -> None:
        """Reload when `serving.db` changed: one small read when it did not (a few
        microseconds, yet a tenth of the gateway's own time: not done per request)."""
        table = self._table
        assert table is not None, "the gateway is not started"
        # In a thread: a SQLite read may wait on a lock, and the event loop must not.
        if await anyio.to_thread.run_sync(table.revision) != self._revision:
            async with self._reload_lock:
                revision, configs = await anyio.to_thread.run_sync(table.snapshot)
                if revision != self._revision:
                    live = await anyio.to_thread.run_sync(self._load, configs)
                    self._endpoints, self._revision = live, revision
                    self._fast_calls = {k: n for k, n in self._fast_calls.items() if k[:2] in live}
                    self.metrics.revision.set(revision)

    async def refresh_or_keep(self) -> None:
        """Refresh, or keep serving what is loaded when `serving.db` cannot be read now."""
        try:
            await self.refresh()
        except PortError as exc:
            log.warning("endpoint configs not refreshed: %s", exc)

    def _load(self, configs: list[EndpointConfig]) -> dict[tuple[str, str], LiveEndpoint]:
        live: dict[tuple[str, str], LiveEndpoint] = {}
        used: list[Variant] = []
        for config in configs:
            variants = tuple(self._pool.load(v) for v in config.variants)
            shadow = None if config.shadow is None else self._pool.load(config.shadow.variant)
            live[config.region, config.name] = LiveEndpoint(config, variants, shadow)
            used += [lv.variant for lv in variants] + ([shadow.variant] if shadow else [])
            for loaded in (*variants, *([shadow] if shadow else [])):
                if loaded.error:
                    log.error("%s", loaded.error)
        self._pool.retain(used)
        return live

    def describe(self) -> dict[str, Any]:
        endpoints = []
        for live in self._endpoints.values():
            shadow = live.config.shadow
            endpoints.append(
                {
                    "name": live.config.name,
                    "region": live.config.region,
                    "invocation_timeout_ms": live.config.invocation_timeout_ms,
                    "variants": [describe_variant(v) for v in live.variants],
                    "shadow": None
                    if shadow is None or live.shadow is None
                    else {
                        "variant": describe_variant(live.shadow),
                        "sample_percent": shadow.sample_percent,
                    },
                }
            )
        return {"region": self.region, "revision": self._revision, "endpoints": endpoints}

    # ------------------------------------------------------------ requests

    async def invoke(
        self, name: str, raw: bytes, request_id: str, region: str | None = None
    ) -> Answer:
        """Answer a request to endpoint `name` in `region` (default: the home region)."""
        key = (region or self.region, name)
        live = self._endpoints.get(key)
        if live is None:  # maybe created since the last poll: look before saying no
            await self.refresh_or_keep()
            live = self._endpoints.get(key)
        if live is None:
            self.metrics.rejected.labels("not_found").inc()
            message = f"endpoint {name!r} not found in region {key[0]}"
            return error_answer(404, message, request_id)
        try:
            instances = parse_instances(raw)
        except InvalidInput as exc:
            self.metrics.rejected.labels("bad_request").inc()
            return error_answer(400, str(exc), request_id)
        chosen = live.pick(self._rng)
        answer, outcome = await self._predict(live, chosen, instances, request_id)
        shadow, mirror = live.shadow, live.config.shadow
        if (
            shadow is not None
            and mirror is not None
            and self._rng.random() * 100 < mirror.sample_percent
        ):
            job = MirrorJob(
                request_id, live.config.region, name, instances, chosen.name, outcome, shadow,
                live.config.invocation_timeout_ms,
            )  # fmt: skip
            answer = replace(answer, mirror=job)
        return answer

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Marks a request being served (on the event loop), so shadow calls wait."""
        self._serving += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._serving -= 1
            if not self._serving:
                self._idle.set()

    def mirror(self, job: MirrorJob) -> bool:
        """Queue shadow work; False when it was dropped (queue full or shutting down)."""
        return self._mirror is not None and self._mirror.submit(job)

    async def _predict(
        self, live: LiveEndpoint, chosen: LoadedVariant, instances: list[Any], request_id: str
    ) -> tuple[Answer, Outcome]:
        """The production call, bounded by the endpoint's timeout: in a worker thread, or on
        the event loop for a variant whose calls have stayed fast (INLINE_AFTER)."""
        config = live.config
        timeout_ms = config.invocation_timeout_ms
        key = (config.region, config.name, chosen.name)
        fast = self._fast_calls.get(key, 0)
        start = time.perf_counter()
        if fast >= INLINE_AFTER and timeout_ms >= INLINE_MARGIN * self.options.inline_ms:
            outcome = predict_timed(chosen, instances, timeout_ms)
        else:
            try:
                with anyio.fail_after(timeout_ms / 1000):
                    outcome = await anyio.to_thread.run_sync(
                        predict_timed, chosen, instances, timeout_ms, abandon_on_cancel=True
                    )
            except TimeoutError:  # the thread is left to finish; its answer is dropped
                elapsed = (time.perf_counter() - start) * 1000
                outcome = timeout_outcome(chosen.name, timeout_ms, elapsed)
        self._fast_calls[key] = fast + 1 if outcome.ms < self.options.inline_ms else 0
        content = b""
        if outcome.error is None:
            try:
                body = {"predictions": outcome.outputs, "variant": chosen.name}
                content = json.dumps(body, default=to_json, allow_nan=False).encode()
            except (TypeError, ValueError) as exc:  # NaN, or objects JSON cannot carry
                missing = first_missing(instances) if isinstance(exc, ValueError) else None
                if missing is None:
                    reason = f"variant {chosen.name} answered badly: {describe_error(exc)}"
                    outcome = Outcome(None, reason, outcome.ms)
                else:  # NaN out for null in: the model does not take missing values
                    reason = (
                        f"variant {chosen.name} refused the input: instance {missing} has null "
                        "values the model does not accept: it answered NaN"
                    )
                    outcome = Outcome(None, reason, outcome.ms, bad_input=True)
        # Callers wait for the thread hop too: alarms see that time, pairs the model's own.
        elapsed = (time.perf_counter() - start) * 1000
        self.metrics.observe(
            config.region, config.name, chosen.name, PRODUCTION, elapsed, outcome.failed
        )
        if outcome.error is None:
            return Answer(200, content, request_id, chosen.name), outcome
        if outcome.bad_input:
            self.metrics.rejected.labels("bad_input").inc()
        status = 400 if outcome.bad_input else 504 if outcome.timed_out else 502
        return error_answer(status, outcome.error, request_id, chosen.name), outcome
