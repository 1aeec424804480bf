"""Blue-green on the real gateway: a failing candidate trips the error alarm and is rolled back."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from core.domain import Library
from core.runtime import load_model
from tests.e2e.conftest import MMM, Workspace
from tests.support.models import (
    sample_instances,
    train_flaky_regressor,
    train_sklearn_regressor,
    write_golden,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def control_plane(ws: Workspace) -> Iterator[str]:
    settings = yaml.safe_load((ws.home / "mmm.yaml").read_text())
    settings["worker"] = {"poll_s": 0.2, "lease_s": 5}
    (ws.home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    port = free_port()
    log = (ws.home.parent / "up.log").open("w")
    proc = subprocess.Popen(
        [str(MMM), "up", "--port", str(port)], env=ws.env("ops"), stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("mmm up did not start: " + (ws.home.parent / "up.log").read_text())
    yield url
    proc.terminate()
    assert proc.wait(timeout=60) == 0
    log.close()


def flaky_golden(artifact: Path, folder: Path) -> Path:
    """Golden cases the flaky model can answer (first feature at or below its threshold)."""
    model = load_model(artifact, Library.SKLEARN)
    rows = [r for r in sample_instances(10, 60) if r[0] <= 0.0][:15]
    path = folder / "flaky.golden.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"input": r, "output": o})
            for r, o in zip(rows, model.predict(rows), strict=True)
        )
        + "\n"
    )
    return path


def test_failing_candidate_is_rolled_back_and_no_request_fails_because_of_it(
    ws: Workspace, control_plane: str, tmp_path: Path
) -> None:
    url = control_plane
    v1 = train_sklearn_regressor(ws.models)
    ws.ok("register", "churn", "--artifact", str(v1), "--library", "sklearn",
          "--golden", str(write_golden(v1, Library.SKLEARN, ws.models)))  # fmt: skip
    v2 = train_flaky_regressor(ws.models, threshold=0.0)
    ws.ok("register", "churn", "--artifact", str(v2), "--library", "sklearn",
          "--golden", str(flaky_golden(v2, ws.models)))  # fmt: skip

    first = ws.ok("deploy", "churn", "1", "--endpoint", "churn-scorer", "--detach").out.strip()
    assert (
        ws.ok("status", first, "--wait", "--timeout", "120", "--json").json()["state"]
        == "succeeded"
    )

    rows = np.array(sample_instances(10, 200))
    log: list[dict[str, Any]] = []
    stop = threading.Event()

    def traffic() -> None:
        rng = np.random.default_rng(0)
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                row = rows[rng.integers(len(rows))].tolist()
                sent = time.monotonic()
                try:
                    r = client.post(
                        f"{url}/endpoints/churn-scorer/invocations", json={"instances": [row]}
                    )
                    body = r.json()
                    log.append(
                        {
                            "at": sent,
                            "status": r.status_code,
                            "variant": r.headers.get("x-mmm-variant"),
                            "x0": row[0],
                            "body": body,
                        }
                    )
                except httpx.HTTPError as exc:
                    log.append(
                        {"at": sent, "status": 0, "variant": None, "x0": row[0], "body": str(exc)}
                    )
                time.sleep(0.002)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        spec = tmp_path / "bg.yaml"
        spec.write_text(yaml.safe_dump({
            "endpoint": "churn-scorer",
            "strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 8},
            "alarms": {"error_rate": 0.05, "min_requests": 20},
        }))  # fmt: skip
        second = ws.ok("deploy", "churn", "2", "-f", str(spec), "--detach").out.strip()
        res = ws.run("status", second, "--wait", "--timeout", "180", "--json")
        d = res.json()
        assert res.code == 1  # a rolled-back rollout is a failed `status --wait`
        ended = time.monotonic()
        time.sleep(1.5)  # traffic after the rollback
    finally:
        stop.set()
        sender.join()

    assert d["state"] == "rolled_back", d["error"]
    assert "error-rate" in d["error"] and any(e["type"] == "alarm" for e in d["events"])
    endpoints = httpx.get(f"{url}/endpoints").json()["endpoints"]
    weights = {v["name"]: v["weight"] for e in endpoints for v in e["variants"]}
    assert weights == {"churn-v1": 100.0}

    failures = [r for r in log if r["status"] != 200]
    assert failures, "the candidate never failed: the test proves nothing"
    # every failure is the candidate refusing an input it cannot take, never the rollback
    assert all(r["variant"] == "churn-v2" and r["x0"] > 0.0 for r in failures), failures[:3]
    after = [r for r in log if r["at"] > ended + 0.5]
    assert after and all(r["status"] == 200 and r["variant"] == "churn-v1" for r in after)
