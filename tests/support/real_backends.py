"""Comet and GitHub fakes wired to the real adapters, for tests: the environment comet_ml
reads (its retries and error tracking off), and adapters that never pause between
requests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.adapters.comet import CometRegistry
from core.adapters.github import GitHubCodeHost
from core.domain import Library
from tests.support.fake_comet import FakeComet
from tests.support.fake_github import FakeGitHub
from tests.support.models import train_sklearn_regressor, write_golden

COMET_KEY = "comet-key-5f1d2c"  # distinctive: a scan of every output looks for it
GITHUB_TOKEN = "ghp_token7a9e3b"
WORKSPACE = "risk-team"
REPO = "acme/backend"


def comet_environment(monkeypatch: pytest.MonkeyPatch, comet: FakeComet) -> None:
    """Point comet_ml at the fake, with no retries of its own and no error tracking."""
    monkeypatch.setenv("COMET_URL_OVERRIDE", comet.url_override)
    monkeypatch.setenv("COMET_ERROR_TRACKING_ENABLE", "false")
    monkeypatch.setenv("COMET_DISABLE_AUTO_LOGGING", "1")
    monkeypatch.setenv("COMET_HTTP_SESSION_RETRY_TOTAL", "0")
    monkeypatch.setenv("COMET_TIMEOUT_API", "5")


@contextmanager
def running_comet(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeComet]:
    with FakeComet(api_key=COMET_KEY) as comet:
        comet_environment(monkeypatch, comet)
        yield comet


def comet_registry() -> CometRegistry:
    return CometRegistry(WORKSPACE, COMET_KEY)


def github_codehost(gh: FakeGitHub, **options: object) -> GitHubCodeHost:
    return GitHubCodeHost(
        REPO,
        GITHUB_TOKEN,
        base_url=gh.api_url,
        seconds_between_requests=0,
        seconds_between_writes=0,
        **options,  # type: ignore[arg-type]
    )


def model_files(folder: Path, seed: int) -> dict[str, bytes]:
    """A real sklearn regressor and its golden data, as a Comet version's assets."""
    artifact = train_sklearn_regressor(folder / f"m{seed}", seed=seed)
    golden = write_golden(artifact, Library.SKLEARN, folder / f"m{seed}")
    return {"model.joblib": artifact.read_bytes(), "golden.jsonl": golden.read_bytes()}
