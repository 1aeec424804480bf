"""Comet and GitHub fakes wired to the real adapters, for tests: the environment comet_ml
reads (its retries and error tracking off), adapters that never pause between requests,
and a whole service on them (`comet_github_service`) with the embedded artifacts, serving
and monitor."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from core.adapters.comet import CometRegistry
from core.adapters.github import GitHubCodeHost
from core.bootstrap import build_ports, build_store, init_workspace, load_workspace
from core.codegen.standalone import self_contained, workflow_files
from core.domain import Library
from core.service import Service
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


def comet_github_service(
    home: Path, monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub, actor: str = "alice"
) -> Service:
    """A service in a new workspace at `home` on the Comet registry (the fake comet_ml is
    pointed at: see `running_comet`) and the GitHub code host `gh`, as the composition root
    makes them: self-contained golden tests and the workflow. Its worker retries at once
    (`backoff_s` 0) at most 3 times."""
    monkeypatch.setenv("COMET_API_KEY", COMET_KEY)
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
    ws, _ = init_workspace(home)
    settings = yaml.safe_load((ws.home / "mmm.yaml").read_text())
    settings["worker"] = {"poll_s": 0.05, "backoff_s": 0, "max_attempts": 3}
    settings["comet"] = {"workspace": WORKSPACE}
    settings["github"] = {"repo": REPO, "checks_timeout_s": 600}
    (ws.home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    ws = load_workspace(ws.home)
    ports = dataclasses.replace(
        build_ports(ws),
        registry=comet_registry(),
        codehost=github_codehost(gh, rewrite_files=self_contained, extra_files=workflow_files()),
    )
    return Service(ws, build_store(ws), ports, actor)
