"""A service on real local registry, buckets and SQLite, with recording fakes for the rest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.adapters.local.artifacts import LocalArtifactStore
from core.adapters.local.registry import LocalRegistry
from core.bootstrap import SilentNotifier, load_workspace
from core.domain import Library
from core.ports import Ports
from core.service import Service
from core.store.sqlite import SqliteStore
from tests.support.fakes import RecordingCodeHost, RecordingMonitor, RecordingServing
from tests.support.models import train_sklearn_regressor, write_golden

MakeService = Callable[..., Service]
Files = Callable[[int], tuple[Path, Path]]  # the model_files fixture: seed -> artifact, golden


@pytest.fixture
def make_service(tmp_path: Path) -> MakeService:
    """make_service(actor="alice", settings={...}) -> Service sharing one workspace and fakes."""
    home = tmp_path / "ws"
    home.mkdir()
    ports = Ports(
        registry=LocalRegistry(home / "registry"),
        artifacts=LocalArtifactStore(home / "buckets"),
        codehost=RecordingCodeHost(),
        serving=RecordingServing(),
        monitor=RecordingMonitor(),
        notifier=SilentNotifier(),
    )

    def make(actor: str = "alice", settings: dict[str, Any] | None = None) -> Service:
        base: dict[str, Any] = {"worker": {"poll_s": 0.05, "backoff_s": 0}}
        (home / "mmm.yaml").write_text(yaml.safe_dump({**base, **(settings or {})}))
        ws = load_workspace(home)
        return Service(ws, SqliteStore(home / "state.db"), ports, actor)

    return make


@pytest.fixture
def model_files(tmp_path: Path) -> Callable[[int], tuple[Path, Path]]:
    def files(seed: int = 0) -> tuple[Path, Path]:
        artifact = train_sklearn_regressor(tmp_path / "models", seed=seed)
        return artifact, write_golden(artifact, Library.SKLEARN, tmp_path / "models")

    return files


def register_two(svc: Service, model_files: Files, model: str = "churn") -> None:
    """Versions 1 and 2 of `model`: two regressors trained on different seeds."""
    for seed in (0, 1):
        artifact, golden = model_files(seed)
        svc.register(model, artifact, "sklearn", golden, "risk")
