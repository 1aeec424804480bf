"""Loaded models per variant, and one timed call of a model: the unit both paths share."""

from __future__ import annotations

import bisect
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from core.domain import Library

# Not core.runtime: serving adapters import this module, and numpy need not load with them.
from core.ports import EndpointConfig, InvalidInput, ModelFailed, NotFound, Variant


class Predictor(Protocol):
    def predict(self, instances: list[Any]) -> list[Any]: ...


Loader = Callable[[Path, Library], Predictor]
Resolve = Callable[[str], Path]


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """One line naming the exception, short enough for a JSON error and a capture record."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def local_resolver(buckets: Path) -> Resolve:
    """Artifact URI -> file: `file://` URIs, `local://<bucket>/<key>` under `buckets`, plain paths."""

    def resolve(uri: str) -> Path:
        if uri.startswith("file://"):
            from urllib.request import url2pathname  # 40 ms of imports: only for such URIs

            path = Path(url2pathname(urlparse(uri).path))
        elif uri.startswith("local://"):
            from core.adapters.local.artifacts import LocalArtifactStore

            path = LocalArtifactStore(buckets).local_path(uri)
        elif "://" in uri:
            raise InvalidInput(f"{uri}: the local gateway serves file://, local:// and paths only")
        else:
            path = Path(uri)
        if not path.is_file():
            raise NotFound(f"{uri}: no artifact file at {path}")
        return path

    return resolve


def default_loader() -> Loader:
    from core.runtime import load_model_cached

    return load_model_cached


@dataclass(frozen=True, slots=True)
class LoadedVariant:
    """A variant with its model, or the reason it could not be loaded."""

    variant: Variant
    predictor: Predictor | None
    error: str | None = None

    @property
    def name(self) -> str:
        return self.variant.name


@dataclass(frozen=True)
class LiveEndpoint:
    """An endpoint as served: its loaded variants and the cumulative weights for routing."""

    config: EndpointConfig
    variants: tuple[LoadedVariant, ...]  # every production variant, weight 0 included
    routable: tuple[LoadedVariant, ...] = field(init=False)
    cumulative: tuple[float, ...] = field(init=False)
    shadow: LoadedVariant | None = None

    def __post_init__(self) -> None:
        routable = tuple(v for v in self.variants if v.variant.weight > 0)
        object.__setattr__(self, "routable", routable)
        object.__setattr__(
            self, "cumulative", tuple(accumulate(v.variant.weight for v in routable))
        )

    def pick(self, rng: random.Random) -> LoadedVariant:
        point = rng.random() * self.cumulative[-1]
        index = bisect.bisect_right(self.cumulative, point)
        return self.routable[min(index, len(self.routable) - 1)]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call of a model gave: outputs or an error, and how long it took."""

    outputs: list[Any] | None
    error: str | None
    ms: float
    bad_input: bool = False  # the error is the caller's: the model refused the instances
    timed_out: bool = False

    @property
    def failed(self) -> bool:
        """A fault of the model (or its loading, or time), as alarms count errors."""
        return self.error is not None and not self.bad_input


class ModelError(Exception):
    """The model raised, answered badly, or is not loaded; `bad_input` when it refused
    the instances (wrong shape or types) rather than failing on them."""

    def __init__(self, message: str, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input


def _refused_input(exc: Exception) -> bool:
    # Instances that do not fit the model are the caller's fault (the runtime counts null or
    # strings a model raised on among them); a model raising on input that fits is not.
    return isinstance(exc, InvalidInput) and not isinstance(exc, ModelFailed)


def first_missing(instances: list[Any]) -> int | None:
    """The index of the first instance with a missing value (null, or NaN), if any."""
    for i, instance in enumerate(instances):
        values = instance.values() if isinstance(instance, dict) else instance
        if isinstance(instance, dict | list) and any(
            v is None or (isinstance(v, float) and math.isnan(v)) for v in values
        ):
            return i
    return None


def call_model(loaded: LoadedVariant, instances: list[Any]) -> list[Any]:
    """One prediction; every failure comes out as ModelError with a one-line reason."""
    if loaded.predictor is None:
        raise ModelError(loaded.error or f"variant {loaded.name} is not loaded")
    try:
        outputs = loaded.predictor.predict(instances)
    except Exception as exc:
        if _refused_input(exc):
            raise ModelError(f"variant {loaded.name} refused the input: {exc}", True) from exc
        raise ModelError(f"variant {loaded.name} failed: {describe_error(exc)}") from exc
    if not isinstance(outputs, list) or len(outputs) != len(instances):
        got = len(outputs) if isinstance(outputs, list) else type(outputs).__name__
        raise ModelError(
            f"variant {loaded.name} answered {got} predictions for {len(instances)} instances"
        )
    return outputs


def predict_timed(loaded: LoadedVariant, instances: list[Any], timeout_ms: float) -> Outcome:
    """Call the model in this thread, timing the call alone (so production and shadow times
    compare); an answer later than `timeout_ms` counts as an error, as it would for a caller."""
    start = time.perf_counter()
    try:
        outputs = call_model(loaded, instances)
    except ModelError as exc:
        return Outcome(None, str(exc), (time.perf_counter() - start) * 1000, exc.bad_input)
    ms = (time.perf_counter() - start) * 1000
    if ms > timeout_ms:
        return timeout_outcome(loaded.name, timeout_ms, ms)
    return Outcome(outputs, None, ms)


def timeout_outcome(variant: str, timeout_ms: float, ms: float) -> Outcome:
    return Outcome(
        None, f"variant {variant} did not answer within {timeout_ms:g} ms", ms, timed_out=True
    )


class ModelPool:
    """Loads each (artifact, library) once and keeps it while some variant uses it."""

    def __init__(self, resolve: Resolve, loader: Loader | None = None) -> None:
        self._resolve = resolve
        self._loader = loader
        self._models: dict[tuple[str, Library], Predictor] = {}
        self._lock = threading.Lock()

    def load(self, variant: Variant) -> LoadedVariant:
        """Never raises: a variant that cannot load carries its error (the next load retries)."""
        key = (variant.artifact, variant.library)
        with self._lock:
            model = self._models.get(key)
        if model is None:
            try:
                loader = self._loader or default_loader()
                model = loader(self._resolve(variant.artifact), variant.library)
            except Exception as exc:
                reason = f"variant {variant.name}: cannot load {variant.artifact}: "
                return LoadedVariant(variant, None, reason + describe_error(exc))
            with self._lock:
                self._models[key] = model
        return LoadedVariant(variant, model)

    def retain(self, variants: list[Variant]) -> None:
        """Forget models no variant in `variants` uses any more."""
        keep = {(v.artifact, v.library) for v in variants}
        with self._lock:
            for key in set(self._models) - keep:
                del self._models[key]
