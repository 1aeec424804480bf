"""The embedded Serving port: desired endpoint configs in `<home>/serving.db`.

The gateway (`core.gateway`, run by `mmm up`) watches that table and serves
what it says, so this adapter and the gateway may live in different
processes. Captured pairs are read back from the `captures` bucket.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.gateway.capture import MAX_LINES, CaptureWriter, captures_root, read_captures
from core.gateway.config_store import SERVING_DB, EndpointTable
from core.gateway.engine import LiveEndpoint
from core.gateway.mirror import MirrorJob, run_mirror
from core.gateway.predictors import Loader, ModelPool, Resolve, local_resolver, predict_timed
from core.ports import CapturedPair, EndpointConfig, InvalidInput, NotFound, PortError


class LocalServing:
    def __init__(
        self,
        home: Path,
        resolve: Resolve | None = None,
        loader: Loader | None = None,
        capture_max_lines: int = MAX_LINES,
        seed: int | None = None,
    ) -> None:
        self.home = home
        self._resolve = resolve or local_resolver(home / "buckets")
        self._loader = loader
        self._capture_max_lines = capture_max_lines
        self._rng = random.Random(seed)
        self._table: EndpointTable | None = None

    @property
    def table(self) -> EndpointTable:
        # Opened on first use: building the adapter touches no file.
        if self._table is None:
            self._table = EndpointTable(self.home / SERVING_DB)
        return self._table

    def close(self) -> None:
        if self._table is not None:
            self._table.close()
            self._table = None

    def get_endpoint(self, name: str, region: str) -> EndpointConfig | None:
        return self.table.get(name, region)

    def endpoints(self) -> list[EndpointConfig]:
        return self.table.all()

    def apply(self, config: EndpointConfig) -> EndpointConfig | None:
        return self.table.apply(config)

    def delete(self, name: str, region: str) -> bool:
        return self.table.delete(name, region)

    def captured(self, name: str, region: str, shadow_variant: str) -> Iterator[CapturedPair]:
        return read_captures(captures_root(self.home), name, shadow_variant, region)

    def replay(self, name: str, region: str, inputs: list[Any]) -> int:
        """Each input through a production variant and the shadow, one at a time, captured
        exactly as the gateway captures a mirrored request (no gateway needed)."""
        config = self.get_endpoint(name, region)
        where = f"endpoint {name!r} ({region})"
        if config is None:
            raise NotFound(f"{where}: not found")
        if config.shadow is None:
            raise InvalidInput(f"{where}: has no shadow variant to replay against")
        pool = ModelPool(self._resolve, self._loader)
        live = LiveEndpoint(
            config, tuple(pool.load(v) for v in config.variants), pool.load(config.shadow.variant)
        )
        broken = [v.error for v in live.routable if v.error]
        if broken:
            raise PortError(f"{where}: {broken[0]}")
        assert live.shadow is not None
        batch = uuid.uuid4().hex[:12]
        timeout_ms = config.invocation_timeout_ms
        writer = CaptureWriter(captures_root(self.home), self._capture_max_lines)
        try:
            for i, instance in enumerate(inputs):
                chosen = live.pick(self._rng)
                production = predict_timed(chosen, [instance], timeout_ms)
                job = MirrorJob(
                    f"replay-{batch}-{i}", region, name, [instance], chosen.name, production,
                    live.shadow, timeout_ms,
                )  # fmt: skip
                run_mirror(job, writer)
        finally:
            writer.close()
        return len(inputs)
