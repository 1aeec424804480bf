"""Blue-green on the real gateway: bad client input during the bake is answered 400 and is not
held against the candidate, which goes on to serve."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import tests.e2e.test_rollback as rollback
from tests.e2e.conftest import Workspace
from tests.support.models import sample_instances

pytestmark = pytest.mark.slow  # a whole rollout through `mmm up`: `make test-slow`

control_plane = rollback.control_plane  # `mmm up` on a free port, as the rollback test runs it

ENDPOINT = "churn-scorer"


def bad_bodies(n: int) -> list[str]:
    """`n` bodies a Ridge cannot take: NaN, Infinity, -Infinity, null, a string, in turn."""
    row = [repr(v) for v in sample_instances(10, 1)[0]]
    spoilers = ["NaN", "Infinity", "-Infinity", "null", '"high"']
    bodies = []
    for i in range(n):
        values = list(row)
        values[i % 10] = spoilers[i % len(spoilers)]
        bodies.append('{"instances": [[' + ", ".join(values) + "]]}")
    return bodies


def weight_of(url: str, variant: str) -> float:
    endpoints = httpx.get(f"{url}/endpoints", timeout=10).json()["endpoints"]
    weights = {v["name"]: v["weight"] for e in endpoints for v in e["variants"]}
    return float(weights.get(variant, 0.0))


def test_bad_input_during_a_bake_is_the_callers_error_and_rolls_nothing_back(
    ws: Workspace, control_plane: str, tmp_path: Path
) -> None:
    url = control_plane
    invocations = f"{url}/endpoints/{ENDPOINT}/invocations"
    assert ws.register(seed=0) == 1
    assert ws.register(seed=1) == 2
    first = ws.ok("deploy", "churn", "1", "--endpoint", ENDPOINT, "--detach").out.strip()
    assert (
        ws.ok("status", first, "--wait", "--timeout", "120", "--json").json()["state"]
        == "succeeded"
    )

    good: list[int] = []
    stop = threading.Event()

    def traffic() -> None:  # steady good traffic, so the alarms have requests to judge
        rows = sample_instances(10, 50)
        with httpx.Client(timeout=30) as client:
            i = 0
            while not stop.is_set():
                response = client.post(invocations, json={"instances": [rows[i % len(rows)]]})
                good.append(response.status_code)
                i += 1
                time.sleep(0.02)

    sender = threading.Thread(target=traffic)
    sender.start()
    bad: list[dict[str, Any]] = []
    try:
        spec = tmp_path / "bg.yaml"
        spec.write_text(yaml.safe_dump({
            "endpoint": ENDPOINT,
            "strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 8},
            "alarms": {"error_rate": 0.05, "min_requests": 10},
        }))  # fmt: skip
        second = ws.ok("deploy", "churn", "2", "-f", str(spec), "--detach").out.strip()

        # the bake has begun once the candidate takes traffic
        deadline = time.monotonic() + 180
        while weight_of(url, "churn-v2") == 0:
            assert time.monotonic() < deadline, "the candidate never took traffic"
            time.sleep(0.1)
        with httpx.Client(timeout=30) as client:
            for body in bad_bodies(60):
                response = client.post(
                    invocations, content=body, headers={"content-type": "application/json"}
                )
                bad.append(
                    {
                        "status": response.status_code,
                        "variant": response.headers.get("x-mmm-variant"),
                        "body": response.text,
                    }
                )
        res = ws.run("status", second, "--wait", "--timeout", "240", "--json")
        d = res.json()
    finally:
        stop.set()
        sender.join()

    assert d["state"] == "succeeded", (d["error"], [e for e in d["events"] if e["type"] == "alarm"])
    assert res.code == 0
    assert not [e for e in d["events"] if e["type"] == "alarm"]
    assert weight_of(url, "churn-v2") == 100.0

    assert len(bad) == 60
    for answer in bad:
        assert answer["status"] == 400, answer
        body = json.loads(answer["body"])
        assert list(body) == ["error"] and "\n" not in answer["body"]
    # NaN and Infinity never reach a model; null and strings reach one, which refuses them
    refused = [a for a in bad if a["variant"] is not None]
    assert refused and all("does not accept" in json.loads(a["body"])["error"] for a in refused)
    # the test proves something only if the candidate was handed bad input during its bake
    assert any(a["variant"] == "churn-v2" for a in refused), bad[:3]
    assert good and set(good) == {200}

    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    errors = [
        line
        for line in metrics.splitlines()
        if line.startswith("mmm_errors_total{") and not line.endswith(" 0.0")
    ]
    assert errors == []
