"""Local alarms evaluated on the aggregates a real gateway writes to `metrics.db`."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.adapters.local.monitor import LocalMonitor
from core.adapters.local.serving import LocalServing
from core.domain import Library
from core.gateway.aggregates import (
    METRICS_DB,
    AggregateRecorder,
    bucket_of,
    bucket_upper_ms,
    quantile_ms,
)
from core.gateway.app import create_app
from core.gateway.engine import GatewayOptions
from core.gateway.server import GatewayServer
from core.ports import AlarmRef, EndpointConfig, NotFound, Variant
from core.spec import Alarms
from tests.support.models import sample_instances, train_flaky_regressor, train_sklearn_regressor

REGION = "local"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "ws"


def deploy(home: Path, name: str, artifact: Path) -> str:
    """Serve `artifact` alone on endpoint `name`; returns the variant's name."""
    variant = Variant(
        name=f"{name}-v1",
        model=name,
        version=1,
        library=Library.SKLEARN,
        artifact=artifact.as_uri(),
        weight=100,
    )
    LocalServing(home).apply(EndpointConfig(name=name, region=REGION, variants=[variant]))
    return variant.name


@contextmanager
def gateway(home: Path) -> Iterator[httpx.Client]:
    """A gateway for the block; stopping it flushes its last aggregates to metrics.db."""
    server = GatewayServer(create_app(home, GatewayOptions(seed=3))).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        server.stop()


def send(client: httpx.Client, name: str, instances: list[Any]) -> list[int]:
    return [
        client.post(f"/endpoints/{name}/invocations", json={"instances": [x]}).status_code
        for x in instances
    ]


def by_metric(states: list[Any]) -> dict[str, Any]:
    return {s.metric: s for s in states}


def test_the_error_rate_alarm_fires_on_a_breach_and_the_latency_alarm_does_not(home: Path) -> None:
    flaky = train_flaky_regressor(home / "models", threshold=0.0)  # raises when age > 0
    name = deploy(home, "flaky", flaky)
    monitor = LocalMonitor(home)
    names = monitor.ensure_alarms("flaky", REGION, name, Alarms(error_rate=0.1, min_requests=20))
    assert names == ["mmm/flaky/flaky-v1/error-rate", "mmm/flaky/flaky-v1/p99-latency"]
    start = time.time()
    with gateway(home) as client:
        statuses = send(client, "flaky", sample_instances(10, 40))
    failed = statuses.count(502)
    assert 0 < failed < 40 and statuses.count(200) == 40 - failed

    states = by_metric(monitor.evaluate(names, REGION, since=start))
    assert states["error_rate"].value == pytest.approx(failed / 40)
    assert states["error_rate"].threshold == 0.1
    assert states["error_rate"].firing is True
    assert 0 < states["p99_latency_ms"].value < 1000
    assert states["p99_latency_ms"].firing is False


def test_no_verdict_below_min_requests_then_a_verdict_across_gateway_runs(home: Path) -> None:
    flaky = train_flaky_regressor(home / "models", threshold=0.0)
    name = deploy(home, "flaky", flaky)
    monitor = LocalMonitor(home)
    names = monitor.ensure_alarms("flaky", REGION, name, Alarms(error_rate=0.05, min_requests=20))
    failing = [x for x in sample_instances(10, 60) if x[0] > 0][:10]
    assert len(failing) == 10
    start = time.time()
    with gateway(home) as client:
        assert send(client, "flaky", failing) == [502] * 10
    error_rate = by_metric(monitor.evaluate(names, REGION, since=start))["error_rate"]
    assert (error_rate.value, error_rate.firing) == (1.0, False)  # 10 requests < 20

    with gateway(home) as client:  # a second gateway run adds to the same window
        assert send(client, "flaky", failing) == [502] * 10
    error_rate = by_metric(monitor.evaluate(names, REGION, since=start))["error_rate"]
    assert (error_rate.value, error_rate.firing) == (1.0, True)


def test_a_healthy_variant_stays_quiet_and_the_p99_alarm_fires_over_its_threshold(
    home: Path,
) -> None:
    model = train_sklearn_regressor(home / "models", seed=0)
    name = deploy(home, "churn", model)
    monitor = LocalMonitor(home)
    quiet = monitor.ensure_alarms("churn", REGION, name, Alarms(min_requests=20))
    strict = Alarms(p99_latency_ms=0.001, min_requests=20)  # below any measurable latency
    start = time.time()
    with gateway(home) as client:
        assert send(client, "churn", sample_instances(10, 30)) == [200] * 30
    states = by_metric(monitor.evaluate(quiet, REGION, since=start))
    assert (states["error_rate"].value, states["error_rate"].firing) == (0.0, False)
    assert states["p99_latency_ms"].firing is False

    # same names, new thresholds: ensure_alarms updates in place
    assert monitor.ensure_alarms("churn", REGION, name, strict) == quiet
    states = by_metric(monitor.evaluate(quiet, REGION, since=start))
    assert states["p99_latency_ms"].threshold == 0.001
    assert states["p99_latency_ms"].firing is True


def test_the_window_starts_at_since_and_regions_are_apart(home: Path) -> None:
    now = [1000.2]
    recorder = AggregateRecorder(home / METRICS_DB, clock=lambda: now[0])
    recorder.start()
    for _ in range(30):
        recorder.record(REGION, "churn", "churn-v2", "production", 5.0, error=True)
    now[0] = 2000.7
    for _ in range(20):
        recorder.record(REGION, "churn", "churn-v2", "production", 5.0, error=False)
    recorder.flush()
    for _ in range(10):  # the same second again, after a flush: merged into its row
        recorder.record(REGION, "churn", "churn-v2", "production", 5.0, error=False)
    recorder.record(
        REGION, "churn", "churn-v2", "shadow", 5.0, error=True
    )  # not production traffic
    recorder.close()
    with sqlite3.connect(home / METRICS_DB) as conn:
        rows = conn.execute(
            "SELECT requests FROM samples WHERE second = 2000 AND role = 'production'"
        ).fetchall()
    assert rows == [(30,)]

    monitor = LocalMonitor(home, clock=lambda: 2001.0, default_window_s=300)
    names = monitor.ensure_alarms("churn", REGION, "churn-v2", Alarms(error_rate=0.1))
    rate = names[0]
    assert monitor.evaluate([rate], REGION, since=1500)[0].value == 0.0
    assert monitor.evaluate([rate], REGION, since=1000.5)[0].value == 0.5  # whole seconds
    assert monitor.evaluate([rate], REGION, since=1000.5)[0].firing is True
    assert monitor.evaluate([rate], REGION)[0].value == 0.0  # the last 300 s

    with pytest.raises(NotFound, match="mmm/churn/churn-v2/error-rate"):
        monitor.evaluate([rate], "eu-west-1")
    monitor.ensure_alarms("churn", "eu-west-1", "churn-v2", Alarms(error_rate=0.1))
    elsewhere = monitor.evaluate([rate], "eu-west-1", since=0)[0]
    assert (elsewhere.value, elsewhere.firing) == (0.0, False)


def test_live_figures_per_variant_and_role_over_the_last_window(home: Path) -> None:
    now = [5000.5]
    recorder = AggregateRecorder(home / METRICS_DB, clock=lambda: now[0])
    recorder.start()
    for i in range(40):  # 40 answers to callers, 4 of them errors
        recorder.record(REGION, "churn", "churn-v2", "production", 2.0, error=i % 10 == 0)
    for _ in range(10):
        recorder.record(REGION, "churn", "churn-v3", "shadow", 8.0, error=False)
    for _ in range(5):  # a batch call's rows: counted, not timed
        recorder.record(REGION, "churn", "churn-v4", "shadow", None, error=False)
    now[0] = 4000.5  # long before the window: left out
    recorder.record(REGION, "churn", "churn-v2", "production", 900.0, error=True)
    recorder.close()

    monitor = LocalMonitor(home, clock=lambda: 5010.0)
    live = monitor.figures("churn", REGION, "churn-v2", "production", window_s=20)
    assert (live.requests, live.request_rate, live.error_rate) == (40, 2.0, 0.1)
    assert live.p99_ms is not None and 2.0 <= live.p99_ms <= 2.0 * 1.19  # one bucket at most
    shadow = monitor.figures("churn", REGION, "churn-v3", "shadow", window_s=20)
    assert (shadow.requests, shadow.error_rate) == (10, 0.0)
    assert shadow.p99_ms is not None and 8.0 <= shadow.p99_ms <= 8.0 * 1.19
    untimed = monitor.figures("churn", REGION, "churn-v4", "shadow", window_s=20)
    assert (untimed.requests, untimed.p99_ms) == (5, None)  # no latency, not 0 ms
    idle = monitor.figures("churn", "eu-west-1", "churn-v2", "production", window_s=20)
    assert (idle.requests, idle.request_rate, idle.error_rate, idle.p99_ms) == (0, 0.0, 0.0, None)


def test_alarms_are_listed_and_deleted(home: Path) -> None:
    monitor = LocalMonitor(home)
    first = monitor.ensure_alarms("churn", REGION, "churn-v1", Alarms())
    second = monitor.ensure_alarms("churn", REGION, "churn-v2", Alarms())
    monitor.ensure_alarms("fraud", REGION, "fraud-v1", Alarms())
    assert monitor.alarms("mmm/churn/") == [AlarmRef(REGION, n) for n in sorted(first + second)]
    assert len(monitor.alarms()) == 6
    # the same names in another region are other alarms, listed with their region
    monitor.ensure_alarms("churn", "lab", "churn-v1", Alarms())
    assert [a for a in monitor.alarms("mmm/churn/") if a.region == "lab"] == [
        AlarmRef("lab", n) for n in first
    ]
    monitor.delete_alarms(first, "lab")
    monitor.delete_alarms(first, REGION)
    monitor.delete_alarms(first, REGION)  # already gone: no error
    assert monitor.alarms("mmm/churn/") == [AlarmRef(REGION, n) for n in sorted(second)]
    with pytest.raises(NotFound):
        monitor.evaluate(first, REGION)


def test_p99_read_from_the_histogram_is_at_most_one_bucket_above_the_truth() -> None:
    for latencies in ([0.05 * i for i in range(1, 201)], [float(i) for i in range(1, 1001)]):
        buckets: dict[int, int] = {}
        for ms in latencies:
            buckets[bucket_of(ms)] = buckets.get(bucket_of(ms), 0) + 1
        truth = sorted(latencies)[int(0.99 * len(latencies)) - 1]
        estimate = quantile_ms(buckets, 0.99)
        assert estimate is not None
        assert truth * 0.9999 <= estimate <= truth * 2 ** (1 / 4) * 1.0001
    assert quantile_ms({}, 0.99) is None
    assert bucket_upper_ms(0) == 0.01
