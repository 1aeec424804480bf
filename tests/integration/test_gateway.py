"""The local serving gateway over real HTTP on 127.0.0.1, serving real models.

Models are trained here on scikit-learn's bundled data (tests.support.models);
the gateway runs under uvicorn in a thread, or as its own process for SIGTERM.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.adapters.local.serving import LocalServing
from core.domain import Library
from core.gateway.aggregates import METRICS_DB, read_window
from core.gateway.app import create_app
from core.gateway.capture import CaptureWriter
from core.gateway.client import invoke
from core.gateway.engine import INLINE_AFTER, Gateway, GatewayOptions
from core.gateway.mirror import MirrorJob, MirrorPool
from core.gateway.predictors import LoadedVariant, Outcome
from core.gateway.server import GatewayServer
from core.ports import (
    CapturedPair,
    EndpointConfig,
    InvalidInput,
    NotFound,
    ShadowConfig,
    TransientError,
    Variant,
)
from core.runtime import load_model
from tests.support.models import (
    sample_instances,
    train_flaky_regressor,
    train_sklearn_regressor,
    train_slow_regressor,
)

REPO = Path(__file__).resolve().parents[2]
REGION = "local"


# ---------------------------------------------------------------- helpers


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "ws"


def models_dir(home: Path) -> Path:
    return home / "buckets" / "production" / "models"


def variant(name: str, path: Path, weight: float = 100, *, local_uri: bool = False) -> Variant:
    """`local_uri`: name the artifact as the local artifact store does (`local://bucket/key`)."""
    if local_uri:
        key = path.relative_to(path.parents[1]).as_posix()
        artifact = f"local://production/{key}"
    else:
        artifact = path.as_uri()
    return Variant(
        name=name,
        model=name.rsplit("-v", 1)[0],
        version=int(name.rsplit("-v", 1)[1]),
        library=Library.SKLEARN,
        artifact=artifact,
        weight=weight,
    )


def endpoint(
    name: str,
    variants: list[Variant],
    shadow: Variant | None = None,
    sample_percent: float = 100,
    timeout_ms: int = 2000,
    region: str = REGION,
) -> EndpointConfig:
    return EndpointConfig(
        name=name,
        region=region,
        variants=variants,
        shadow=None
        if shadow is None
        else ShadowConfig(variant=shadow, sample_percent=sample_percent),
        invocation_timeout_ms=timeout_ms,
    )


def predictions(path: Path, instances: list[Any]) -> list[Any]:
    return load_model(path, Library.SKLEARN).predict(instances)


@contextmanager
def serving(home: Path, **options: Any) -> Iterator[tuple[httpx.Client, Gateway]]:
    """A gateway on a free port; leaving the block stops it (draining shadow work)."""
    app = create_app(home, GatewayOptions(seed=7, **options))
    server = GatewayServer(app).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client, app.state.gateway
    finally:
        server.stop()


def post(
    client: httpx.Client, name: str, instances: list[Any], request_id: str | None = None
) -> httpx.Response:
    headers = {"x-request-id": request_id} if request_id else {}
    return client.post(
        f"/endpoints/{name}/invocations", json={"instances": instances}, headers=headers
    )


def metric(text: str | bytes, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 when none)."""
    if isinstance(text, bytes):
        text = text.decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def synced(client: httpx.Client) -> dict[str, Any]:
    """GET /endpoints reads serving.db first: after it, the gateway serves the latest configs."""
    response = client.get("/endpoints")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def captured(home: Path, name: str, shadow: str) -> dict[str, CapturedPair]:
    pairs = list(LocalServing(home).captured(name, REGION, shadow))
    by_id = {p.request_id: p for p in pairs}
    assert len(by_id) == len(pairs), "a request was captured twice"
    return by_id


# ---------------------------------------------------------------- routing


def test_weights_are_honoured_and_every_answer_comes_from_the_variant_named(home: Path) -> None:
    a = train_sklearn_regressor(models_dir(home), seed=0)
    b = train_sklearn_regressor(models_dir(home), seed=1, shift=100)
    LocalServing(home).apply(
        endpoint(
            "churn",
            [
                variant("churn-v1", a, 70, local_uri=True),
                variant("churn-v2", b, 30, local_uri=True),
            ],
        )
    )
    instances = sample_instances(10, 40)
    expected = {"churn-v1": predictions(a, instances), "churn-v2": predictions(b, instances)}
    n = 2000
    seen: Counter[str] = Counter()
    with serving(home) as (client, _):
        for i in range(n):
            response = post(client, "churn", [instances[i % 40]])
            assert response.status_code == 200, response.text
            body = response.json()
            assert response.headers["x-mmm-variant"] == body["variant"]
            assert body["predictions"] == pytest.approx([expected[body["variant"]][i % 40]])
            seen[body["variant"]] += 1
        text = client.get("/metrics").text

    p = 0.7
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(seen["churn-v1"] - n * p) <= 5 * sigma, seen
    assert seen["churn-v1"] + seen["churn-v2"] == n
    for name in ("churn-v1", "churn-v2"):
        labels = {"endpoint": "churn", "variant": name, "role": "production"}
        assert metric(text, "mmm_requests_total", **labels) == seen[name]
        assert metric(text, "mmm_latency_seconds_count", **labels) == seen[name]
        assert metric(text, "mmm_errors_total", **labels) == 0


def test_a_changed_config_is_served_and_listed(home: Path) -> None:
    a = train_sklearn_regressor(models_dir(home), seed=0)
    b = train_sklearn_regressor(models_dir(home), seed=1, shift=100)
    serving_port = LocalServing(home)
    serving_port.apply(endpoint("churn", [variant("churn-v1", a)]))
    x = sample_instances(10, 1)
    with serving(home) as (client, _):
        assert client.get("/healthz").json()["status"] == "ok"
        assert {post(client, "churn", x).json()["variant"] for _ in range(20)} == {"churn-v1"}

        serving_port.apply(
            endpoint("churn", [variant("churn-v1", a, 0), variant("churn-v2", b, 100)])
        )
        listed = synced(client)["endpoints"]
        assert [(v["name"], v["weight"], v["loaded"]) for v in listed[0]["variants"]] == [
            ("churn-v1", 0, True),
            ("churn-v2", 100, True),
        ]
        assert listed[0]["shadow"] is None
        assert {post(client, "churn", x).json()["variant"] for _ in range(20)} == {"churn-v2"}

        # an endpoint created after start is served at once, without waiting for a poll
        serving_port.apply(endpoint("fresh", [variant("churn-v1", a)]))
        assert post(client, "fresh", x).status_code == 200

        assert serving_port.delete("churn", REGION)
        synced(client)
        response = post(client, "churn", x)
        assert response.status_code == 404
        assert response.json() == {"error": "endpoint 'churn' not found in region local"}


def test_a_variant_that_cannot_load_is_listed_and_answers_502(home: Path) -> None:
    missing = models_dir(home) / "gone.joblib"
    LocalServing(home).apply(endpoint("churn", [variant("churn-v1", missing, local_uri=True)]))
    with serving(home) as (client, _):
        assert client.get("/healthz").status_code == 200
        listed = synced(client)["endpoints"][0]["variants"][0]
        assert listed["loaded"] is False
        assert "churn-v1" in listed["error"] and "gone.joblib" in listed["error"]
        response = post(client, "churn", sample_instances(10, 1))
        assert response.status_code == 502
        assert "churn-v1" in response.json()["error"]


# ---------------------------------------------------------------- errors


def test_errors_are_one_line_json_and_counted(home: Path) -> None:
    flaky = train_flaky_regressor(models_dir(home), threshold=0.0)
    LocalServing(home).apply(endpoint("flaky", [variant("flaky-v1", flaky)]))
    instances = sample_instances(10, 30)
    failing = [x for x in instances if x[0] > 0]
    assert 0 < len(failing) < len(instances)
    with serving(home) as (client, _):
        statuses: Counter[int] = Counter()
        for x in instances:
            response = post(client, "flaky", [x])
            statuses[response.status_code] += 1
            if x[0] > 0:
                assert response.status_code == 502
                assert "exceeds the threshold" in response.json()["error"]
                assert response.headers["x-mmm-variant"] == "flaky-v1"
            else:
                assert response.status_code == 200
        refused = post(client, "flaky", [[1.0, 2.0]])
        assert refused.status_code == 400
        assert "expects 10" in refused.json()["error"]
        not_json = client.post("/endpoints/flaky/invocations", content=b"{oops")
        assert not_json.status_code == 400
        assert not_json.json()["error"].startswith("body is not JSON")
        empty = post(client, "flaky", [])
        assert empty.status_code == 400
        unknown = post(client, "nope", [instances[0]])
        assert unknown.status_code == 404
        route = client.get("/nothing")
        assert route.status_code == 404 and "error" in route.json()
        for response in (refused, not_json, empty, unknown):
            assert "\n" not in response.text
        text = client.get("/metrics").text

    labels = {"endpoint": "flaky", "variant": "flaky-v1", "role": "production"}
    assert metric(text, "mmm_requests_total", **labels) == len(instances) + 1  # + refused
    assert metric(text, "mmm_errors_total", **labels) == len(failing) == statuses[502]
    assert metric(text, "mmm_latency_seconds_count", **labels) == len(instances) + 1
    assert metric(text, "mmm_rejected_total", reason="bad_input") == 1
    assert metric(text, "mmm_rejected_total", reason="bad_request") == 2
    assert metric(text, "mmm_rejected_total", reason="not_found") == 1


def test_a_model_slower_than_the_timeout_answers_504(home: Path) -> None:
    slow = train_slow_regressor(models_dir(home), delay_ms=1000)
    LocalServing(home).apply(endpoint("slow", [variant("slow-v1", slow)], timeout_ms=50))
    with serving(home) as (client, _):
        response = post(client, "slow", sample_instances(10, 1))
        assert response.status_code == 504
        assert response.json() == {"error": "variant slow-v1 did not answer within 50 ms"}
        text = client.get("/metrics").text
    assert metric(text, "mmm_errors_total", endpoint="slow", variant="slow-v1") == 1


class WhereCalled:
    """A model answering 0.0 that notes, per call, whether it ran on the event loop."""

    def __init__(self) -> None:
        self.on_loop: list[bool] = []
        self.delay_s = 0.0

    def predict(self, instances: list[Any]) -> list[Any]:
        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:  # a worker thread has no running loop
            self.on_loop.append(False)
        time.sleep(self.delay_s)
        return [0.0] * len(instances)


def test_a_model_whose_calls_stay_fast_is_called_on_the_event_loop(home: Path) -> None:
    """After INLINE_AFTER fast calls in a row a variant runs on the event loop (no thread
    hop); one slow call sends its next calls back to a thread; a short timeout keeps them
    there. `inline_ms` is set high, so no call's speed depends on the machine's."""
    model = WhereCalled()
    artifact = home / "where.joblib"
    port = LocalServing(home)
    port.apply(endpoint("fast", [variant("fast-v1", artifact)], timeout_ms=60_000))
    port.apply(endpoint("bounded", [variant("bounded-v1", artifact)], timeout_ms=2000))
    x = sample_instances(10, 1)
    options = {"resolve": lambda uri: artifact, "loader": lambda path, library: model}
    with serving(home, inline_ms=1000, **options) as (client, _):
        for _ in range(INLINE_AFTER + 3):
            assert post(client, "fast", x).status_code == 200
        assert model.on_loop == [False] * INLINE_AFTER + [True] * 3
        model.on_loop.clear()
        model.delay_s = 1.2  # over inline_ms: the next call goes back to a thread
        assert post(client, "fast", x).status_code == 200
        model.delay_s = 0.0
        assert post(client, "fast", x).status_code == 200
        assert model.on_loop == [True, False]
        model.on_loop.clear()
        for _ in range(INLINE_AFTER + 3):  # 2000 ms is under INLINE_MARGIN x 1000 ms
            assert post(client, "bounded", x).status_code == 200
        assert model.on_loop == [False] * (INLINE_AFTER + 3)


# ---------------------------------------------------------------- shadow


def test_a_raising_shadow_never_changes_the_answer_and_pairs_match_the_requests(
    home: Path,
) -> None:
    prod = train_sklearn_regressor(models_dir(home), seed=0)
    flaky = train_flaky_regressor(models_dir(home), threshold=0.0)
    candidate = variant("churn-v2", flaky, 0)  # provisioned at weight 0, then shadowing
    LocalServing(home).apply(
        endpoint("churn", [variant("churn-v1", prod), candidate], shadow=candidate)
    )
    instances = sample_instances(10, 60)
    expected = predictions(prod, instances)
    sent: dict[str, tuple[int, Any]] = {}  # request id -> index of the instance, answer
    with serving(home) as (client, gateway):
        for i, x in enumerate(instances):
            response = post(client, "churn", [x], request_id=f"req-{i}")
            assert response.status_code == 200, response.text
            assert response.json() == {
                "predictions": [pytest.approx(expected[i])],
                "variant": "churn-v1",
            }
            assert response.headers["x-request-id"] == f"req-{i}"
            sent[f"req-{i}"] = (i, response.json()["predictions"][0])
        response = post(client, "churn", instances[:3], request_id="multi")
        assert response.status_code == 200
        for j, y in enumerate(response.json()["predictions"]):
            sent[f"multi#{j}"] = (j, y)
    text = gateway.metrics.text()  # read after the stop: every shadow call has finished

    pairs = captured(home, "churn", "churn-v2")
    assert set(pairs) == set(sent)
    shadow_expected = safe_predictions(flaky, instances)
    for request_id, (i, answer) in sent.items():
        pair, x = pairs[request_id], instances[i]
        assert pair.input == x
        assert pair.production == answer
        assert (pair.production_variant, pair.shadow_variant) == ("churn-v1", "churn-v2")
        assert pair.production_error is None and pair.production_ms > 0
        if x[0] > 0:
            assert pair.shadow is None
            assert pair.shadow_error is not None and "exceeds the threshold" in pair.shadow_error
        else:
            assert pair.shadow_error is None
            assert pair.shadow == pytest.approx(shadow_expected[i])
    shadow_labels = {"endpoint": "churn", "variant": "churn-v2"}
    n_requests = len(instances) + 1
    assert metric(text, "mmm_shadow_mirrored_total", **shadow_labels) == n_requests
    assert metric(text, "mmm_capture_pairs_total", **shadow_labels) == len(sent)
    assert metric(text, "mmm_requests_total", role="shadow", **shadow_labels) == n_requests
    failed_requests = sum(x[0] > 0 for x in instances) + any(x[0] > 0 for x in instances[:3])
    assert metric(text, "mmm_errors_total", role="shadow", **shadow_labels) == failed_requests
    assert metric(text, "mmm_errors_total", role="production") == 0


def safe_predictions(path: Path, instances: list[Any]) -> list[Any]:
    """One prediction per instance, None where the model raises."""
    model = load_model(path, Library.SKLEARN)
    out = []
    for x in instances:
        try:
            out.append(model.predict([x])[0])
        except InvalidInput:
            out.append(None)
    return out


def test_shadow_calls_wait_while_a_request_is_served(home: Path) -> None:
    """A shadow call waits (up to idle_wait_s) while the gateway serves a request: it would
    hold the interpreter that request needs."""
    idle = threading.Event()  # not set: a request is being served
    shadow = WhereCalled()
    loaded = LoadedVariant(variant("churn-v2", home / "unused.joblib"), shadow)
    pool = MirrorPool(CaptureWriter(home / "captures"), window_s=0, idle=idle, idle_wait_s=600)
    production = Outcome([0.0], None, 1.0)
    assert pool.submit(
        MirrorJob("r1", REGION, "churn", [[1.0]], "churn-v1", production, loaded, 1e4)
    )
    time.sleep(0.5)
    assert shadow.on_loop == []  # still waiting
    idle.set()  # the request was answered
    assert pool.close(timeout_s=600) == 0
    assert shadow.on_loop == [False]


def test_a_slow_shadow_is_dropped_when_its_queue_is_full_never_waited_for(home: Path) -> None:
    prod = train_sklearn_regressor(models_dir(home), seed=0)
    slow = train_slow_regressor(models_dir(home), delay_ms=300)
    LocalServing(home).apply(
        endpoint("churn", [variant("churn-v1", prod)], shadow=variant("churn-v2", slow, 0))
    )
    instances = sample_instances(10, 40)
    expected = predictions(prod, instances)
    with serving(home, mirror_workers=1, mirror_queue=2, mirror_window_s=0) as (client, gateway):
        for i, x in enumerate(instances):
            response = post(client, "churn", [x], request_id=f"req-{i}")
            assert response.status_code == 200
            assert response.json()["predictions"] == [pytest.approx(expected[i])]
    text = gateway.metrics.text()

    labels = {"endpoint": "churn", "variant": "churn-v2"}
    mirrored = metric(text, "mmm_shadow_mirrored_total", **labels)
    dropped = metric(text, "mmm_shadow_dropped_total", **labels)
    assert mirrored + dropped == len(instances)
    # 40 answers came back while one 300 ms shadow call at a time drained a queue of 2
    assert dropped >= 1
    pairs = captured(home, "churn", "churn-v2")
    assert len(pairs) == mirrored  # the shutdown finished what was queued
    slow_expected = predictions(slow, instances)
    for request_id, pair in pairs.items():
        i = int(request_id.removeprefix("req-"))
        assert pair.shadow == pytest.approx(slow_expected[i])
        # timed where asked alone (the first of each batch), and then truly
        assert pair.shadow_ms is None or pair.shadow_ms >= 300
    assert any(pair.shadow_ms is not None for pair in pairs.values())


def test_sample_percent_mirrors_a_share_of_requests(home: Path) -> None:
    prod = train_sklearn_regressor(models_dir(home), seed=0)
    other = train_sklearn_regressor(models_dir(home), seed=1)
    LocalServing(home).apply(
        endpoint(
            "churn",
            [variant("churn-v1", prod)],
            shadow=variant("churn-v2", other, 0),
            sample_percent=25,
        )
    )
    n = 400
    x = sample_instances(10, 1)
    with serving(home) as (client, _):
        for i in range(n):
            assert post(client, "churn", x, request_id=f"r{i}").status_code == 200
    count = len(captured(home, "churn", "churn-v2"))
    sigma = math.sqrt(n * 0.25 * 0.75)
    assert abs(count - n * 0.25) <= 5 * sigma


# ---------------------------------------------------------------- replay and the adapter


def test_replay_captures_pairs_in_bounded_part_files_without_a_gateway(home: Path) -> None:
    prod = train_sklearn_regressor(models_dir(home), seed=0)
    flaky = train_flaky_regressor(models_dir(home), threshold=0.0)
    # a wide margin both ways: production's first call in a fresh process on a busy machine
    # can take far more than its usual millisecond, and must still be inside the timeout
    slow = train_slow_regressor(models_dir(home), delay_ms=3000)
    port = LocalServing(home, capture_max_lines=4)
    port.apply(endpoint("churn", [variant("churn-v1", prod)], shadow=variant("churn-v2", flaky, 0)))
    port.apply(
        endpoint(
            "late", [variant("late-v1", prod)], shadow=variant("late-v2", slow, 0), timeout_ms=1000
        )
    )
    inputs = sample_instances(10, 10)
    requests = [(f"replay-{i}", x) for i, x in enumerate(inputs)]
    assert port.replay("churn", REGION, requests) == 10
    assert port.replay("late", REGION, requests[:2]) == 2

    folder = home / "buckets" / "captures" / "churn" / "churn-v2"
    assert sorted(p.name for p in folder.iterdir()) == [
        "part-00001.jsonl",
        "part-00002.jsonl",
        "part-00003.jsonl",
    ]
    pairs = list(port.captured("churn", REGION, "churn-v2"))
    assert [p.input for p in pairs] == inputs
    assert [p.production for p in pairs] == pytest.approx(predictions(prod, inputs))
    assert [p.shadow is None for p in pairs] == [x[0] > 0 for x in inputs]
    assert [p.request_id for p in pairs] == [request_id for request_id, _ in requests]

    late = list(port.captured("late", REGION, "late-v2"))
    assert [p.shadow_error for p in late] == ["variant late-v2 did not answer within 1000 ms"] * 2
    assert all(p.production_error is None for p in late)

    with pytest.raises(NotFound, match="nope"):
        port.replay("nope", REGION, requests)
    port.apply(endpoint("plain", [variant("plain-v1", prod)]))
    with pytest.raises(InvalidInput, match="no shadow"):
        port.replay("plain", REGION, requests)


def test_apply_is_idempotent_returns_the_previous_config_and_refuses_bad_ones(home: Path) -> None:
    path = models_dir(home) / "m.joblib"
    port = LocalServing(home)
    first = endpoint("churn", [variant("churn-v1", path)])
    second = endpoint("churn", [variant("churn-v1", path, 50), variant("churn-v2", path, 50)])
    assert port.apply(first) is None
    revision = port.table.revision()
    assert port.apply(first) == first
    assert port.table.revision() == revision  # the same config again changes nothing
    assert port.apply(second) == first
    assert port.get_endpoint("churn", REGION) == second
    assert port.get_endpoint("churn", "eu-west-1") is None
    assert port.endpoints() == [second]
    # another process sees the same state
    assert LocalServing(home).get_endpoint("churn", REGION) == second

    with pytest.raises(InvalidInput, match="unique"):
        port.apply(endpoint("churn", [variant("churn-v1", path), variant("churn-v1", path)]))
    with pytest.raises(InvalidInput, match="add up to 0"):
        port.apply(endpoint("churn", [variant("churn-v1", path, 0)]))
    with pytest.raises(InvalidInput, match="not a valid name"):
        port.apply(endpoint("../etc", [variant("churn-v1", path)]))
    assert port.get_endpoint("churn", REGION) == second

    assert port.delete("churn", REGION) is True
    assert port.delete("churn", REGION) is False
    assert port.endpoints() == []


def test_invoke_sends_one_request_and_raises_port_errors(home: Path) -> None:
    prod = train_sklearn_regressor(models_dir(home), seed=0)
    LocalServing(home).apply(endpoint("churn", [variant("churn-v1", prod)]))
    x = sample_instances(10, 2)
    expected = predictions(prod, x)
    with serving(home) as (client, _):
        url = str(client.base_url)
        assert invoke(url, "churn", {"instances": x}) == {
            "predictions": pytest.approx(expected),
            "variant": "churn-v1",
        }
        assert invoke(url, "churn", x)["predictions"] == pytest.approx(expected)
        assert invoke(url, "churn", x[0])["predictions"] == pytest.approx(expected[:1])
        with pytest.raises(NotFound, match="nope"):
            invoke(url, "nope", x)
        with pytest.raises(InvalidInput, match="expects 10"):
            invoke(url, "churn", [[1, 2]])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(TransientError, match="no gateway"):
        invoke(f"http://127.0.0.1:{closed_port}", "churn", x)
    for bad_url in ("ftp://127.0.0.1", "http://[::1", "http://127.0.0.1/" + "a" * 70_000):
        with pytest.raises(InvalidInput, match=r"^--url '[^\n]{,100}': "):
            invoke(bad_url, "churn", x)


def test_one_gateway_serves_each_region_under_its_own_route(home: Path) -> None:
    """Locally a region is a name: `/regions/{region}/endpoints/{name}/invocations` serves
    that region's endpoint; the route without a region serves the home region."""
    here = train_sklearn_regressor(models_dir(home), seed=0)
    there = train_sklearn_regressor(models_dir(home), seed=1, shift=100)
    port = LocalServing(home)
    port.apply(endpoint("churn", [variant("churn-v1", here)]))
    port.apply(endpoint("churn", [variant("churn-v2", there)], region="eu-1"))
    port.apply(endpoint("only-eu", [variant("churn-v2", there)], region="eu-1"))
    x = sample_instances(10, 3)
    with serving(home) as (client, _):  # leaving it flushes the aggregates
        url = str(client.base_url)
        assert invoke(url, "churn", x) == {
            "predictions": pytest.approx(predictions(here, x)),
            "variant": "churn-v1",
        }
        assert invoke(url, "churn", x, region=REGION)["variant"] == "churn-v1"
        assert invoke(url, "churn", x, region="eu-1") == {
            "predictions": pytest.approx(predictions(there, x)),
            "variant": "churn-v2",
        }
        with pytest.raises(NotFound, match="'only-eu' not found in region local"):
            invoke(url, "only-eu", x)
        with pytest.raises(NotFound, match="'churn' not found in region us-1"):
            invoke(url, "churn", x, region="us-1")
        listed = synced(client)
        assert listed["region"] == REGION
        assert [(e["region"], e["name"]) for e in listed["endpoints"]] == [
            ("eu-1", "churn"), (REGION, "churn"), ("eu-1", "only-eu"),
        ]  # fmt: skip
        text = client.get("/metrics").text
    labels = {"endpoint": "churn", "role": "production"}
    assert metric(text, "mmm_requests_total", region=REGION, variant="churn-v1", **labels) == 2
    assert metric(text, "mmm_requests_total", region="eu-1", variant="churn-v2", **labels) == 1
    # the alarms' aggregates are kept per region too
    db = sqlite3.connect(home / METRICS_DB)
    counts = {
        region: read_window(db, region, "churn", name, "production", 0).requests
        for region, name in ((REGION, "churn-v1"), ("eu-1", "churn-v2"))
    }
    assert counts == {REGION: 2, "eu-1": 1}


# ---------------------------------------------------------------- a gateway process


@pytest.mark.slow
def test_sigterm_stops_the_gateway_process_without_losing_a_captured_pair(home: Path) -> None:
    prod = train_sklearn_regressor(models_dir(home), seed=0)
    # 20 ms a shadow call: at SIGTERM most of the 50 mirrored requests are still queued
    slow = train_slow_regressor(models_dir(home), delay_ms=20)
    LocalServing(home).apply(
        endpoint("churn", [variant("churn-v1", prod)], shadow=variant("churn-v2", slow, 0))
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.gateway", "--home", str(home), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.rsplit(" ", 1)[1].strip()
        x = sample_instances(10, 1)
        with httpx.Client(base_url=url, timeout=30) as client:
            for i in range(50):
                assert post(client, "churn", x, request_id=f"r{i}").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert set(captured(home, "churn", "churn-v2")) == {f"r{i}" for i in range(50)}
