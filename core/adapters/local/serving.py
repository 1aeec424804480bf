"""The embedded Serving port: desired endpoint configs in `<home>/serving.db`.

The gateway (`core.gateway`, run by `mmm up`) watches that table and serves
what it says, so this adapter and the gateway may live in different
processes. Captured pairs are read back from the `captures` bucket.

`replay` runs models, and a joblib or pickle model is code: it loads and
predicts in a child process without credentials (`core.runtime.child`),
never in the caller (the worker).

A model only its serving container loads (`Library.container_only`: an open
LLM, a vision model) cannot serve here: `apply` refuses a config with one, so
the gateway never meets it.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.gateway.capture import MAX_LINES, CaptureWriter, captures_root, read_captures
from core.gateway.config_store import SERVING_DB, EndpointTable
from core.gateway.mirror import MirrorJob, run_mirror
from core.gateway.predictors import (
    LiveEndpoint,
    Loader,
    ModelPool,
    Resolve,
    describe_error,
    local_resolver,
    predict_timed,
)
from core.isolation import process_scratch
from core.ports import CapturedPair, EndpointConfig, InvalidInput, NotFound, PortError

# A replay runs every input through two models one at a time: allow for big replays.
REPLAY_TIMEOUT_S = 3600.0


class LocalServing:
    def __init__(
        self,
        home: Path,
        resolve: Resolve | None = None,
        loader: Loader | None = None,
        capture_max_lines: int = MAX_LINES,
        seed: int | None = None,
        replay_timeout_s: float = REPLAY_TIMEOUT_S,
    ) -> None:
        """`loader`: how `replay` loads models; given one, replay runs in this process (the
        loader is the caller's code); without one, models load in a child process working
        in this process's scratch folder of the workspace."""
        self.home = home
        self._resolve = resolve or local_resolver(home / "buckets")
        self._loader = loader
        self._capture_max_lines = capture_max_lines
        self._rng = random.Random(seed)
        self._replay_timeout_s = replay_timeout_s
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
        _check_servable(config)
        return self.table.apply(config)

    def delete(self, name: str, region: str) -> bool:
        return self.table.delete(name, region)

    def settled(self, name: str, region: str, config: EndpointConfig | None) -> str | None:
        return None  # the gateway follows the table: a change is made when it is written

    def captured(self, name: str, region: str, shadow_variant: str) -> Iterator[CapturedPair]:
        return read_captures(captures_root(self.home), name, shadow_variant, region)

    def replay(self, name: str, region: str, requests: list[tuple[str, Any]]) -> int:
        """Each input through a production variant and the shadow, one at a time, captured
        exactly as the gateway captures a mirrored request (no gateway needed). The models
        load and run in a child process (see the module's docstring)."""
        config = self.get_endpoint(name, region)
        where = f"endpoint {name!r} ({region})"
        if config is None:
            raise NotFound(f"{where}: not found")
        if config.shadow is None:
            raise InvalidInput(f"{where}: has no shadow variant to replay against")
        seed = self._rng.getrandbits(64)
        if self._loader is not None:
            pool = ModelPool(self._resolve, self._loader)
            return replay_inline(
                self.home, config, self._resolve, requests, seed, self._capture_max_lines, pool
            )
        from core.runtime.child import ChildDied, call

        # URIs are resolved here (the resolver may be the caller's); models load there.
        paths: dict[str, str] = {}
        unresolved: dict[str, list[str]] = {}
        for variant in [*config.variants, config.shadow.variant]:
            try:
                paths[variant.artifact] = str(Path(self._resolve(variant.artifact)).resolve())
            except Exception as exc:
                kind = type(exc).__name__ if isinstance(exc, PortError) else "PortError"
                unresolved[variant.artifact] = [kind, str(exc) or describe_error(exc)]
        request = {
            "op": "replay",
            "home": str(Path(self.home).resolve()),
            "config": config.model_dump(mode="json"),
            "paths": paths,
            "unresolved": unresolved,
            "requests": requests,
            "seed": seed,
            "capture_max_lines": self._capture_max_lines,
        }
        scratch = process_scratch(self.home)
        try:
            with tempfile.TemporaryDirectory(prefix="replay-", dir=scratch) as tmp:
                return int(call(request, cwd=Path(tmp), timeout_s=self._replay_timeout_s))
        except ChildDied as exc:
            raise PortError(f"{where}: replay failed: {exc}") from None


def _check_servable(config: EndpointConfig) -> None:
    """Every variant of `config` (its shadow too) is one the gateway can load; InvalidInput
    naming the first that only its serving container runs."""
    shadow = [config.shadow.variant] if config.shadow is not None else []
    for variant in [*config.variants, *shadow]:
        if variant.library.container_only:
            raise InvalidInput(
                f"{variant.model} v{variant.version} is a {variant.library} model: only "
                "SageMaker serving runs its container (set backends.serving: sagemaker)"
            )


def replay_inline(
    home: Path,
    config: EndpointConfig,
    resolve: Resolve,
    requests: list[tuple[str, Any]],
    seed: int,
    capture_max_lines: int = MAX_LINES,
    pool: ModelPool | None = None,
) -> int:
    """`LocalServing.replay` in this process: the child process runs it (and a caller with
    its own loader). `config` has a shadow; routing draws come from `seed`."""
    assert config.shadow is not None
    where = f"endpoint {config.name!r} ({config.region})"
    pool = pool or ModelPool(resolve)
    live = LiveEndpoint(
        config, tuple(pool.load(v) for v in config.variants), pool.load(config.shadow.variant)
    )
    broken = [v.error for v in live.routable if v.error]
    if broken:
        raise PortError(f"{where}: {broken[0]}")
    assert live.shadow is not None
    rng = random.Random(seed)
    timeout_ms = config.invocation_timeout_ms
    writer = CaptureWriter(captures_root(home), capture_max_lines)
    try:
        for request_id, instance in requests:
            chosen = live.pick(rng)
            production = predict_timed(chosen, [instance], timeout_ms)
            job = MirrorJob(
                request_id, config.region, config.name, [instance], chosen.name,
                production, live.shadow, timeout_ms,
            )  # fmt: skip
            run_mirror(job, writer)
    finally:
        writer.close()
    return len(requests)
