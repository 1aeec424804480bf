"""Prometheus metrics of one gateway (its own registry), fed alongside the alarm aggregates."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from core.gateway.aggregates import AggregateRecorder

__all__ = ["CONTENT_TYPE", "GatewayMetrics"]

_LABELS = ("region", "endpoint", "variant", "role")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class GatewayMetrics:
    """Counters per region, endpoint, variant and role (`production` or `shadow`)."""

    def __init__(self, recorder: AggregateRecorder | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._recorder = recorder
        r = self.registry
        self.requests = Counter(
            "mmm_requests",
            "Invocations answered by a variant, errors included",
            _LABELS,
            registry=r,
        )
        self.errors = Counter(
            "mmm_errors", "Invocations that failed in the model or timed out", _LABELS, registry=r
        )
        self.latency = Histogram(
            "mmm_latency_seconds",
            "Time to answer: production from routing to answer, shadow the model call",
            _LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "mmm_rejected", "Requests refused before reaching a model", ["reason"], registry=r
        )
        pair = ("region", "endpoint", "variant")
        self.mirrored = Counter(
            "mmm_shadow_mirrored", "Requests queued for the shadow variant", pair, registry=r
        )
        self.mirror_dropped = Counter(
            "mmm_shadow_dropped",
            "Requests not mirrored: the shadow queue was full",
            pair,
            registry=r,
        )
        self.captured = Counter(
            "mmm_capture_pairs", "Production/shadow pairs written to the captures", pair, registry=r
        )
        self.capture_failed = Counter(
            "mmm_capture_failed", "Pairs that could not be written", pair, registry=r
        )
        self.revision = Gauge(
            "mmm_config_revision", "Revision of the endpoint configs being served", registry=r
        )
        self._children: dict[tuple[str, str, str, str], tuple[Counter, Counter, Histogram]] = {}

    def observe(
        self, region: str, endpoint: str, variant: str, role: str, ms: float | None, error: bool
    ) -> None:
        """One call; `ms` None: answered within a batch, whose time is not one call's."""
        key = (region, endpoint, variant, role)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(*key),
                self.errors.labels(*key),
                self.latency.labels(*key),
            )
        requests, errors, latency = children
        requests.inc()
        if error:
            errors.inc()
        if ms is not None:
            latency.observe(ms / 1000)
        if self._recorder is not None:
            self._recorder.record(*key, ms, error)

    def on_captured(self, region: str, endpoint: str, variant: str, n: int) -> None:
        self.captured.labels(region, endpoint, variant).inc(n)

    def on_capture_failed(self, region: str, endpoint: str, variant: str, n: int) -> None:
        self.capture_failed.labels(region, endpoint, variant).inc(n)

    def text(self) -> bytes:
        return generate_latest(self.registry)
