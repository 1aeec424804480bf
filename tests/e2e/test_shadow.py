"""Shadow rollouts on the embedded gateway: identical passes and promotes, shifted fails and rolls back."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.conftest import SPEED_BLIND, Workspace
from tests.e2e.test_rollback import control_plane  # noqa: F401  (fixture)
from tests.support.models import sample_instances


def replay_file(tmp: Path, n: int = 600) -> Path:
    path = tmp / "replay.jsonl"
    rows = sample_instances(10, 400) + sample_instances(10, n - 400, start=7)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def shadow_file(tmp: Path, **strategy: object) -> Path:
    path = tmp / "shadow.yaml"
    spec = {
        "endpoint": "churn-scorer",
        "strategy": {"kind": "shadow", "min_samples": 500, **strategy},
        "analysis": SPEED_BLIND,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def weights(ws: Workspace) -> dict[str, tuple[float, str]]:
    out = {}
    for m in ws.ok("models", "--json").json():
        for v in m["versions"]:
            for e in v["endpoints"]:
                out[f"churn-v{v['version']}"] = (e["weight"], e["role"])
    return out


@pytest.mark.slow  # the demo promotes a shadow through the gateway in `make test`
def test_identical_shadow_passes_and_promotes_itself(ws: Workspace, tmp_path: Path) -> None:
    ws.register()
    ws.ok("deploy", "churn", "1", "--endpoint", "churn-scorer")
    ws.register()  # retrained the same way: the same predictions
    f = shadow_file(tmp_path, traffic={"replay": str(replay_file(tmp_path))}, auto_approve=True)
    d = ws.ok("deploy", "churn", "2", "-f", str(f), "--json").json()
    assert d["state"] == "succeeded", d["error"]
    assert d["analysis"]["verdict"] == "pass" and d["analysis"]["samples"] >= 500
    assert d["approvals"] == []  # nobody had to approve
    assert weights(ws) == {"churn-v2": (100.0, "production")}
    events = [e["type"] for e in d["events"]]
    assert "analysis" in events


@pytest.mark.slow  # the analysis's verdicts are tested in-process (tests/unit/test_analysis*)
def test_shifted_shadow_fails_and_leaves_production_untouched(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.register()
    ws.ok("deploy", "churn", "1", "--endpoint", "churn-scorer")
    ws.register(shift=40.0)  # about half a standard deviation of the target
    f = shadow_file(tmp_path, traffic={"replay": str(replay_file(tmp_path))}, auto_approve=True)
    res = ws.run("deploy", "churn", "2", "-f", str(f), "--json")
    d = res.json()
    assert res.code == 1 and d["state"] == "rolled_back"
    assert d["analysis"]["verdict"] == "fail"
    assert "shadow analysis failed" in d["error"]
    assert weights(ws) == {"churn-v1": (100.0, "production")}
    assert not (ws.home / "buckets/production/models/churn/2").exists()
    assert ws.ok("usage", "churn", "--version", "2", "--json").json() == []


@pytest.mark.slow
def test_live_shadow_against_whatever_serves_with_no_extra_configuration(
    ws: Workspace,
    tmp_path: Path,
    control_plane: str,  # noqa: F811
) -> None:
    url = control_plane
    ws.register()
    first = ws.ok("deploy", "churn", "1", "--endpoint", "churn-scorer", "--detach").out.strip()
    ws.ok("status", first, "--wait", "--timeout", "120")
    ws.register()
    # no traffic source: the shadow mirrors whatever live traffic the endpoint gets
    d = ws.ok("deploy", "churn", "2", "-f", str(shadow_file(tmp_path)), "--detach").out.strip()
    # wait for the shadow to be attached, then send live traffic
    for _ in range(600):
        state = ws.ok("status", d, "--json").json()
        if any(
            e.get("step") == "start_shadow" and e["type"] == "step_succeeded"
            for e in state["events"]
        ):
            break
    # live callers keep calling until the analysis has what it needs (at most 6,000 calls)
    rows = sample_instances(10, 300)
    sent = 0
    with httpx.Client(timeout=10) as client:
        while sent < 6000:
            for row in rows[:100]:
                r = client.post(
                    f"{url}/endpoints/churn-scorer/invocations", json={"instances": [row]}
                )
                assert (
                    r.status_code == 200 and r.json()["variant"] == "churn-v1"
                )  # callers see production
            sent += 100
            rows = rows[100:] + rows[:100]
            if ws.ok("status", d, "--json").json()["state"] != "running":
                break
    final = ws.ok("status", d, "--wait", "--timeout", "180", "--json").json()
    assert final["state"] == "waiting_approval" and final["waiting_at"] == "before_promote"
    assert final["analysis"]["verdict"] == "pass"
    done = ws.ok("approve", d, "--json", user="bob").json()
    assert done["state"] in ("running", "succeeded")
    assert ws.ok("status", d, "--wait", "--timeout", "120", "--json").json()["state"] == "succeeded"
