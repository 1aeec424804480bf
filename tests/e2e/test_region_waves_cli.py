"""Two regions on the embedded backends through the `mmm` command (locally a region is a
name the gateway serves under /regions/{region}/...): one region's wave ends before the
next begins, usage lists each region's endpoint, and `mmm invoke --region` reaches it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.gateway.process import GatewayProcess
from tests.e2e.conftest import Workspace

pytestmark = pytest.mark.slow  # the same waves in process: tests/integration/test_region_waves.py


def test_two_local_regions_roll_out_one_after_the_other(ws: Workspace, tmp_path: Path) -> None:
    ws.register(seed=0)
    ws.register(seed=1)
    spec = {"regions": ["local", "lab"],
            "strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 0}}  # fmt: skip
    file = tmp_path / "waves.yaml"
    file.write_text(yaml.safe_dump(spec))
    ws.ok("deploy", "churn", "1", "--endpoint", "churn-live", "-f", str(file))
    second = ws.ok("deploy", "churn", "2", "--endpoint", "churn-live", "-f", str(file))
    lines = [line.split()[2] for line in second.err.splitlines() if " ok " in line]
    local = lines.index("shift:100@local")
    assert lines[local + 1] == "create_variant@lab"  # local's wave ended before lab's began
    assert "drain_old" in lines[-2:] and lines[-1] == "mark_production"
    sites = [s for s in ws.ok("usage", "churn", "--json").json() if s["kind"] == "endpoint"]
    assert sorted((s["location"], s["region"], s["version"]) for s in sites) == [
        ("churn-live", "lab", 2), ("churn-live", "local", 2),
    ]  # fmt: skip
    status = ws.ok("status", "--json").json()
    assert all(d["regions"] == ["local", "lab"] for d in status)
    with GatewayProcess(ws.home, 0) as gateway:
        url, row = gateway.url, ["--data", "[[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]]"]
        for region in ("local", "lab"):
            answer = ws.ok("invoke", "churn-live", "--url", url, "--region", region, *row)
            assert answer.json()["variant"] == "churn-v2"
        home = ws.ok("invoke", "churn-live", "--url", url, *row)  # the route without a region
        assert home.json()["variant"] == "churn-v2"
        gone = ws.run("invoke", "churn-live", "--url", url, "--region", "moon", *row)
        assert gone.code != 0 and "not found in region moon" in gone.err
