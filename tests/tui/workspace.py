"""A workspace filled through the core service for the dashboard's tests, the same every time.

`build(home)` registers three versions of `churn` and two of `fraud` (real scikit-learn
models with their golden data) and runs, through `Service.deploy`/`run`/`abort`:

    dep-250101-000001  churn v1 -> churn-scorer   all-at-once          succeeded
    dep-250101-000002  fraud v1 -> fraud-scorer   all-at-once          succeeded
    dep-250101-000003  churn v2 -> churn-scorer   shadow               waits at before_promote,
                                                                        with its analysis
    dep-250101-000004  churn v3 -> churn-batch    all-at-once          failed (checks fail)
    dep-250101-000005  churn v3 -> churn-canary   all-at-once          aborted while queued
    dep-250101-000006  fraud v2 -> fraud-scorer   blue-green [50,100]  waits at before_rollout

Ids come from a counter and every time from a clock the builder moves by hand, so
snapshots of the dashboard are the same on every run. Endpoints, alarms and the
repository are the file-backed recording fakes of tests/support (`fake_ports`), so a
worker in another process (tests/support/worker_process.py) sees what the test sees.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import yaml

import core.service.commands
from core.bootstrap import load_workspace
from core.domain import Kind, Library
from core.layout import variant_name
from core.ports import CapturedPair
from core.service import Service
from core.store.sqlite import SqliteStore
from tests.support.fakes import RecordingCodeHost, RecordingServing
from tests.support.models import sample_instances, train_sklearn_regressor, write_golden
from tests.support.worker_process import fake_ports

START = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)  # the dashboard's clock in tests
SETTINGS: dict[str, Any] = {"worker": {"poll_s": 0.05, "backoff_s": 0, "lease_s": 30}}

SHADOW_ID = "dep-250101-000003"
FAILED_ID = "dep-250101-000004"
WAITING_ID = "dep-250101-000006"


class ManualClock:
    """A clock that moves only when told: every timestamp the service writes is known."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def service(home: Path, actor: str = "alice", clock: Any = None) -> Service:
    """A service on `home` with the file-backed fakes, as `actor`."""
    ws = load_workspace(home)
    return Service(
        ws, SqliteStore(home / "state.db"), fake_ports(home), actor, clock=clock or (lambda: NOW)
    )


def _counter_ids() -> Iterator[str]:
    for n in itertools.count(1):
        yield f"{n:06d}"


def _shadow_pairs(v1: Path, v2: Path, variant: str, n: int = 1000) -> list[CapturedPair]:
    """What the gateway would have captured: both models' real answers to the same inputs."""
    rows = sample_instances(10, n)
    production = joblib.load(v1).predict(np.asarray(rows))
    shadow = joblib.load(v2).predict(np.asarray(rows))
    return [
        CapturedPair(
            request_id=f"r{i:04d}",
            input=row,
            production=float(p),
            shadow=float(s),
            production_variant=variant_name("churn", "1"),
            shadow_variant=variant,
            production_ms=1.0 + (i % 7) * 0.1,
            shadow_ms=1.05 + (i % 5) * 0.1,
        )
        for i, (row, p, s) in enumerate(zip(rows, production, shadow, strict=True))
    ]


def build(home: Path, models: Path) -> None:
    """Fill a new workspace at `home` (model files go to `models`)."""
    home.mkdir(parents=True)
    (home / "mmm.yaml").write_text(yaml.safe_dump(SETTINGS))
    clock = ManualClock(START)
    ids = _counter_ids()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            core.service.commands,
            "new_id",
            lambda kind: f"{'ret' if kind is Kind.RETIRE else 'dep'}-250101-{next(ids)}",
        )
        svc = service(home, "alice", clock)
        _fill(svc, clock, models)
        svc.close()
        registry = svc.ports.registry
        registry.db.close()  # type: ignore[attr-defined]
    shutil.rmtree(home / "tmp", ignore_errors=True)


def _fill(svc: Service, clock: ManualClock, models: Path) -> None:
    artifacts = {}
    for name, version, seed, shift, owner in (
        ("churn", "1", 0, 0.0, "risk"),
        ("churn", "2", 0, 1.0, "risk"),
        ("churn", "3", 2, 0.0, "risk"),
        ("fraud", "1", 3, 0.0, "payments"),
        ("fraud", "2", 4, 0.0, "payments"),
    ):
        artifact = train_sklearn_regressor(models, seed=seed, shift=shift)
        golden = write_golden(artifact, Library.SKLEARN, models)
        registered = svc.register(name, artifact, "sklearn", golden, owner)
        assert str(registered.version) == version
        artifacts[(name, version)] = artifact
        clock.advance(minutes=1)

    def step(minutes: float) -> None:
        clock.advance(minutes=minutes)

    step(5)
    svc.run(svc.deploy("churn", "1", "churn-scorer"))
    step(5)
    svc.run(svc.deploy("fraud", "1", "fraud-scorer"))

    step(5)
    shadow_file = models / "shadow.yaml"
    shadow_file.write_text(
        yaml.safe_dump(
            {
                "endpoint": "churn-scorer",
                "strategy": {"kind": "shadow", "min_samples": 1000, "auto_approve": False},
            }
        )
    )
    serving = svc.ports.serving
    assert isinstance(serving, RecordingServing)
    variant = variant_name("churn", "2")
    serving.pairs[variant] = _shadow_pairs(
        artifacts[("churn", "1")], artifacts[("churn", "2")], variant
    )
    svc.run(svc.deploy("churn", "2", file=shadow_file))

    step(5)
    codehost = svc.ports.codehost
    assert isinstance(codehost, RecordingCodeHost)
    codehost.checks_pass = False
    svc.run(svc.deploy("churn", "3", "churn-batch"))
    codehost.checks_pass = True

    step(5)
    queued = svc.deploy("churn", "3", "churn-canary")
    svc.abort(queued.id, reason="wrong endpoint")
    svc.run(svc.get(queued.id))

    step(5)
    gated = models / "gated.yaml"
    gated.write_text(
        yaml.safe_dump(
            {
                "endpoint": "fraud-scorer",
                "gates": ["before_rollout"],
                "strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 0},
            }
        )
    )
    svc.run(svc.deploy("fraud", "2", file=gated))
