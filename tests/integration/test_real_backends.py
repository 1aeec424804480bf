"""A whole pipeline with the Comet registry and the GitHub code host (real comet_ml and
PyGithub against local fakes), the embedded artifacts, serving and monitor, in-process."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core.codegen.standalone import WORKFLOW_PATH
from core.domain import DeploymentState
from core.events import StepRetrying
from core.service import Service
from core.service.errors import BadRequest
from tests.support.fake_comet import FakeComet
from tests.support.fake_github import CheckPlan, FakeGitHub
from tests.support.real_backends import (
    COMET_KEY,
    GITHUB_TOKEN,
    REPO,
    WORKSPACE,
    comet_github_service,
    model_files,
    running_comet,
)

MODEL = "churn_model"


@dataclasses.dataclass
class World:
    svc: Service
    comet: FakeComet
    gh: FakeGitHub
    home: Path


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with running_comet(monkeypatch) as comet, FakeGitHub(REPO, token=GITHUB_TOKEN) as gh:
        for seed, version in ((0, "1.0.0"), (1, "1.1.0")):
            comet.add_version(WORKSPACE, MODEL, version, model_files(tmp_path, seed))
        svc = comet_github_service(tmp_path / "ws", monkeypatch, gh)
        yield World(svc, comet, gh, svc.ws.home)


def _tags(world: World, version: str) -> list[str]:
    return world.comet.version(WORKSPACE, MODEL, version).tags


def test_deploy_over_and_retire_with_comet_and_github(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    svc, gh = world.svc, world.gh
    gh.checks = CheckPlan(name="mmm-golden", pending_polls=1)
    first = svc.run(svc.deploy(MODEL, "1.0.0", "churn"))
    assert first.state is DeploymentState.SUCCEEDED, first.shown_error
    pull = gh.pull_of(f"mmm/{first.id}")
    assert pull is not None and pull.merged
    assert yaml.safe_load(gh.files()["deploy/churn/churn_model.yaml"])["model"]["version"] == (
        "1.0.0"
    )
    assert WORKFLOW_PATH in gh.files()  # on first use
    assert "# mmm-requires: joblib scikit-learn" in gh.files()["tests/mmm/test_churn_golden.py"]
    assert "production" in _tags(world, "1.0.0") and "endpoint:churn" in _tags(world, "1.0.0")
    assert world.comet.version(WORKSPACE, MODEL, "1.0.0").status == "Production"
    config = svc.ports.serving.get_endpoint("churn", "local")
    assert config is not None
    assert [(v.name, v.weight) for v in config.variants] == [("churn--model-v1--0--0", 100)]

    second = svc.run(svc.deploy(MODEL, "1.1.0", "churn"))
    assert second.state is DeploymentState.SUCCEEDED, second.shown_error
    assert {"production", "endpoint:churn"} <= set(_tags(world, "1.1.0"))
    assert _tags(world, "1.0.0") == ["archived"]  # off its last endpoint: no endpoint tag
    assert yaml.safe_load(gh.files()["deploy/churn/churn_model.yaml"])["model"]["version"] == (
        "1.1.0"
    )

    retired = svc.run(svc.retire(MODEL, "1.0.0"))
    assert retired.state is DeploymentState.SUCCEEDED, retired.shown_error
    assert _tags(world, "1.0.0") == ["retired"]

    # no secret anywhere: state, workspace files, logs, what GitHub and Comet were sent
    texts = [p.read_bytes().decode("latin-1") for p in world.home.rglob("*") if p.is_file()]
    texts += [caplog.text]
    texts += list(gh.blobs.values()) + [p.body + p.title for p in gh.pulls.values()]
    texts += [str(r.body) + str(r.params) for r in gh.requests + world.comet.requests]
    texts += [d.model_dump_json() for d in svc.deployments()]
    for secret in (COMET_KEY, GITHUB_TOKEN):
        assert not [t for t in texts if secret in t], f"{secret} leaked"


def test_failing_checks_fail_the_deployment_and_provision_nothing(world: World) -> None:
    svc, gh = world.svc, world.gh
    gh.checks = CheckPlan(name="golden-tests", conclusion="failure", summary="2 cases differ")
    d = svc.run(svc.deploy(MODEL, "1.0.0", "churn"))
    assert d.state is DeploymentState.FAILED
    assert "golden-tests (2 cases differ)" in (d.error or "")
    pull = gh.pull_of(f"mmm/{d.id}")
    assert pull is not None and (pull.state, pull.merged) == ("closed", False)
    assert gh.files() == {"README.md": "# app\n"}
    assert svc.ports.serving.endpoints() == []
    assert svc.ports.artifacts.list("production") == []
    assert world.comet.writes() == []  # Comet was never told anything


def test_a_version_missing_from_comet_is_refused_before_anything(world: World) -> None:
    with pytest.raises(BadRequest, match=r"no version 9\.9\.9 in Comet"):
        world.svc.deploy(MODEL, "9.9.9", "churn")
    with pytest.raises(BadRequest, match="not in the registry of Comet"):
        world.svc.deploy("nobody", "1.0.0", "churn")
    assert world.gh.writes() == []
    assert world.svc.deployments() == []


def test_comet_answering_500_then_200_is_waited_for(world: World) -> None:
    queued = world.svc.deploy(MODEL, "1.0.0", "churn")
    world.comet.fail("write/registry-model/item/stage", status=500, times=1)
    d = world.svc.run(queued)
    assert d.state is DeploymentState.SUCCEEDED, d.shown_error
    tagged = world.comet.requests_to("write/registry-model/item/stage")
    # the first write answered 500 and the worker asked again
    assert [r.params["stage"] for r in tagged][:2] == ["staging", "staging"]
    assert "production" in _tags(world, "1.0.0")
    # the deployment's history shows that it waited on Comet, then went on
    waits = [e for e in d.events if isinstance(e, StepRetrying)]
    assert len(waits) == 1, [e.line() for e in d.events]
    wait = waits[0]
    assert (wait.attempt, wait.step) == (1, "mark_staging")
    assert "HTTP 500" in wait.error and "waiting on Comet" in wait.error
    assert wait.line().startswith("wait  mark_staging")
    assert wait.line().endswith(f"(attempt 1; again at {wait.until[11:19]})")
    later = d.events[d.events.index(wait) + 1 :]
    assert any(e.type == "step_succeeded" for e in later)


@pytest.mark.slow  # two deployments; the tag rule itself is in test_comet_registry
def test_an_aborted_deployment_takes_its_endpoint_tag_off(world: World, tmp_path: Path) -> None:
    svc = world.svc
    first = svc.run(svc.deploy(MODEL, "1.0.0", "churn"))
    assert first.state is DeploymentState.SUCCEEDED, first.shown_error
    spec = tmp_path / "gated.yaml"
    spec.write_text("endpoint: churn\ngates: [before_finalize]\n")
    waiting = svc.run(svc.deploy(MODEL, "1.1.0", file=spec))
    assert waiting.state is DeploymentState.WAITING_APPROVAL, waiting.shown_error
    assert _tags(world, "1.1.0") == ["staging", "endpoint:churn"]
    aborted = svc.run(svc.abort(waiting.id))
    assert aborted.state is DeploymentState.ABORTED, aborted.shown_error
    assert _tags(world, "1.1.0") == []
    assert set(_tags(world, "1.0.0")) == {"production", "endpoint:churn"}
