"""Drive the real `mmm` command in a temporary workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.domain import Library
from tests.support.models import sample_instances, train_sklearn_regressor, write_golden

REPO = Path(__file__).resolve().parents[2]
MMM = Path(sys.executable).parent / "mmm"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Workspace:
    home: Path
    models: Path

    def env(self, user: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            MMM_HOME=str(self.home),
            MMM_USER=user,
            PYTHONPATH=str(REPO),
            COMET_ERROR_TRACKING_ENABLE="false",
        )
        return env

    def run(self, *args: str, user: str = "alice", timeout: float = 240) -> Result:
        proc = subprocess.run(
            [str(MMM), *args],
            env=self.env(user),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home.parent,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, user: str = "alice") -> Result:
        res = self.run(*args, user=user)
        assert res.code == 0, f"mmm {' '.join(args)} exited {res.code}: {res.err}"
        return res

    def weights(self, endpoint: str = "churn-scorer") -> dict[str, float]:
        """The production weight of each variant on `endpoint`, as `mmm models` says."""
        weights: dict[str, float] = {}
        for m in self.ok("models", "--json").json():
            for v in m["versions"]:
                for e in v["endpoints"]:
                    if e["endpoint"] == endpoint and e["role"] == "production":
                        weights[f"{m['name']}-v{v['version']}"] = e["weight"]
        return weights

    def snapshot(self) -> dict[str, Any]:
        """Everything a failed command must leave as it was."""
        repo = self.home / "repo"
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "main"], capture_output=True, text=True
        ).stdout.strip()
        buckets = sorted(
            str(p.relative_to(self.home)) for p in (self.home / "buckets").rglob("*") if p.is_file()
        )
        return {
            "deployments": self.ok("status", "--json").json(),
            "models": self.ok("models", "--json").json(),
            "audit": self.ok("audit", "--json").json(),
            "head": head,
            "buckets": buckets,
        }

    def register(
        self, name: str = "churn", seed: int = 0, shift: float = 0.0, user: str = "alice"
    ) -> int:
        artifact = train_sklearn_regressor(self.models, seed=seed, shift=shift)
        golden = write_golden(artifact, Library.SKLEARN, self.models)
        res = self.ok(
            "register", name, "--artifact", str(artifact), "--library", "sklearn",
            "--golden", str(golden), "--owner", "risk", user=user,
        )  # fmt: skip
        return int(res.out.strip())


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    w = Workspace(home=tmp_path / "ws", models=tmp_path / "models")
    w.ok("init")
    return w


# Both variants share this machine's CPUs with whatever else runs on it, so their latencies are
# noise here: tests that judge a verdict compare predictions and leave latency out of it.
SPEED_BLIND = {"max_latency_ratio": 1000, "latency_slack_ms": 3_600_000}


def start_replayed_shadow(ws: Workspace, tmp_path: Path, rows: int) -> str:
    """v1 serving on churn-scorer, v2 (the same model) queued as a shadow that replays `rows`
    inputs and promotes itself on a pass; returns the queued deployment's id."""
    ws.ok("deploy", "churn", "1", "--endpoint", "churn-scorer")
    ws.register()  # v2: the same model again
    replay = tmp_path / "replay.jsonl"
    replay.write_text("\n".join(json.dumps(r) for r in sample_instances(10, rows)) + "\n")
    spec = tmp_path / "shadow.yaml"
    spec.write_text(yaml.safe_dump({
        "endpoint": "churn-scorer",
        "strategy": {"kind": "shadow", "min_samples": 500, "auto_approve": True,
                     "traffic": {"replay": str(replay)}},
        "analysis": SPEED_BLIND,
    }))  # fmt: skip
    return ws.ok("deploy", "churn", "2", "-f", str(spec), "--detach").out.strip()
