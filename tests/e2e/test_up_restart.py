"""`mmm up` stopped by SIGTERM mid-rollout leaves whole weights, and the next start finishes the job."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.conftest import MMM, Workspace
from tests.e2e.test_rollback import free_port


def start(ws: Workspace, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([str(MMM), "up", "--port", str(port)], env=ws.env("ops"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("mmm up did not start")


@pytest.mark.slow  # a restart like the crash matrix's, with SIGTERM
def test_sigterm_mid_rollout_then_restart_finishes(ws: Workspace, tmp_path: Path) -> None:
    settings = yaml.safe_load((ws.home / "mmm.yaml").read_text())
    settings["worker"] = {"poll_s": 0.2, "lease_s": 2}
    (ws.home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    ws.register(seed=0)
    ws.ok("deploy", "churn", "1", "--endpoint", "churn-scorer")
    ws.register(seed=0)
    spec = tmp_path / "bg.yaml"
    spec.write_text(yaml.safe_dump({
        "endpoint": "churn-scorer",
        "strategy": {"kind": "blue-green", "steps": [30, 100], "bake_s": 8},
    }))  # fmt: skip
    port = free_port()
    proc = start(ws, port)
    dep = ws.ok("deploy", "churn", "2", "-f", str(spec), "--detach").out.strip()
    for _ in range(600):  # until the first bake is under way
        d = ws.ok("status", dep, "--json").json()
        if any(e.get("step") == "bake:30" for e in d["events"]):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0

    d = ws.ok("status", dep, "--json").json()
    assert d["state"] == "running"
    weights = sorted(e["weight"] for m in ws.ok("models", "--json").json()
                     for v in m["versions"] for e in v["endpoints"])  # fmt: skip
    assert weights == [30.0, 70.0]  # a whole step, never half of one

    proc = start(ws, port)
    try:
        final = ws.ok("status", dep, "--wait", "--timeout", "120", "--json").json()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert final["state"] == "succeeded", final["error"]
    steps = [e["step"] for e in final["events"] if e["type"] == "step_succeeded"]
    assert len(steps) == len(set(steps)) and "bake:30" in steps and "bake:100" in steps
