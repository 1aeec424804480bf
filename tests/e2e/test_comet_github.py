"""The `mmm` command with the Comet registry and the GitHub code host, `mmm up` serving: the
fakes of both REST APIs run in this process on 127.0.0.1, `mmm up` and every command are
processes of their own that reach them through COMET_URL_OVERRIDE and github.base_url."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from core.codegen.standalone import WORKFLOW_PATH
from tests.e2e.conftest import MMM, Result, Workspace
from tests.e2e.test_rollback import free_port
from tests.support.fake_comet import FakeComet
from tests.support.fake_github import CheckPlan, FakeGitHub
from tests.support.models import sample_instances
from tests.support.real_backends import COMET_KEY, GITHUB_TOKEN, REPO, WORKSPACE, model_files

MODEL = "churn_model"
DESCRIPTOR = "deploy/churn/churn_model.yaml"

pytestmark = pytest.mark.slow


class RemoteWorkspace(Workspace):
    """A workspace whose commands reach the fakes, with dummy credentials."""

    extra: dict[str, str]

    def env(self, user: str) -> dict[str, str]:
        return {**super().env(user), **self.extra}


@dataclass
class World:
    ws: RemoteWorkspace
    comet: FakeComet
    gh: FakeGitHub
    url: str

    def tags(self, version: str) -> list[str]:
        return self.comet.version(WORKSPACE, MODEL, version).tags

    def finished(self, res: Result) -> str:
        """The state the deployment queued by `res` (--detach) reaches."""
        ref = res.out.strip()
        done = self.ws.run("status", ref, "--wait", "--timeout", "240", "--json")
        assert done.out, done.err
        state = str(done.json()["state"])
        return state


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with FakeComet(api_key=COMET_KEY) as comet, FakeGitHub(REPO, token=GITHUB_TOKEN) as gh:
        gh.checks = CheckPlan(name="mmm-golden", pending_polls=1)
        for seed, version in ((0, "1.0.0"), (1, "1.1.0"), (2, "1.2.0")):
            comet.add_version(WORKSPACE, MODEL, version, model_files(tmp_path, seed))
        ws = RemoteWorkspace(home=tmp_path / "ws", models=tmp_path / "models")
        ws.extra = {}
        ws.ok("init")
        settings = yaml.safe_load((ws.home / "mmm.yaml").read_text())
        settings["backends"].update(registry="comet", codehost="github")
        settings["comet"] = {"workspace": WORKSPACE}
        settings["github"] = {"repo": REPO, "base_url": gh.api_url, "checks_timeout_s": 600}
        settings["worker"] = {"poll_s": 0.2, "lease_s": 10, "backoff_s": 0.2}
        (ws.home / "mmm.yaml").write_text(yaml.safe_dump(settings))
        ws.extra = {
            "COMET_URL_OVERRIDE": comet.url_override,
            "COMET_API_KEY": COMET_KEY,
            "GITHUB_TOKEN": GITHUB_TOKEN,
            "COMET_ERROR_TRACKING_ENABLE": "false",
            "COMET_DISABLE_AUTO_LOGGING": "1",
            "COMET_HTTP_SESSION_RETRY_TOTAL": "0",
            "COMET_TIMEOUT_API": "5",
        }
        port = free_port()
        log_path = tmp_path / "up.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [str(MMM), "up", "--port", str(port)], env=ws.env("ops"), stdout=log, stderr=log
            )
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_healthy(url, proc, log_path)
                yield World(ws, comet, gh, url)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
        for secret in (COMET_KEY, GITHUB_TOKEN):
            assert secret not in log_path.read_text()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("mmm up did not start: " + log.read_text())


def _predict(url: str) -> list[float]:
    rows = sample_instances(10, 3)
    r = httpx.post(f"{url}/endpoints/churn/invocations", json={"instances": rows}, timeout=30)
    assert r.status_code == 200, r.text
    predictions: list[float] = r.json()["predictions"]
    return predictions


def test_deploy_over_retire_and_abort_through_the_command(world: World, tmp_path: Path) -> None:
    ws, gh, comet = world.ws, world.gh, world.comet

    first = ws.ok("deploy", MODEL, "1.0.0", "--endpoint", "churn", "--detach")
    assert world.finished(first) == "succeeded"
    pull = gh.pull_of(f"mmm/{first.out.strip()}")
    assert pull is not None and pull.merged
    on_main = gh.files()
    assert yaml.safe_load(on_main[DESCRIPTOR])["model"]["version"] == "1.0.0"
    assert WORKFLOW_PATH in on_main  # added on first use
    assert "core." not in on_main["tests/mmm/test_churn_golden.py"]  # self-contained
    assert set(world.tags("1.0.0")) == {"production", "endpoint:churn"}
    assert comet.version(WORKSPACE, MODEL, "1.0.0").status == "Production"
    assert len(_predict(world.url)) == 3

    second = ws.ok("deploy", MODEL, "1.1.0", "--endpoint", "churn", "--detach")
    assert world.finished(second) == "succeeded"
    assert yaml.safe_load(gh.files()[DESCRIPTOR])["model"]["version"] == "1.1.0"
    assert set(world.tags("1.1.0")) == {"production", "endpoint:churn"}
    assert world.tags("1.0.0") == ["archived"]
    assert len(_predict(world.url)) == 3

    retired = ws.ok("retire", MODEL, "1.0.0", "--detach")
    assert world.finished(retired) == "succeeded"
    assert world.tags("1.0.0") == ["retired"]

    # Abort once the pull request has merged: a revert pull request puts main back.
    gated = tmp_path / "gated.yaml"
    gated.write_text("endpoint: churn\ngates: [before_provision]\n")
    third = ws.ok("deploy", MODEL, "1.2.0", "-f", str(gated), "--detach")
    assert world.finished(third) == "waiting_approval"
    ref = third.out.strip()
    assert yaml.safe_load(gh.files()[DESCRIPTOR])["model"]["version"] == "1.2.0"
    ws.ok("abort", ref, "--detach")
    done = ws.run("status", ref, "--wait", "--timeout", "240", "--json")
    assert done.json()["state"] == "aborted", done.out + done.err
    revert = gh.pull_of(f"mmm/{ref}-revert")
    assert revert is not None and revert.merged
    assert yaml.safe_load(gh.files()[DESCRIPTOR])["model"]["version"] == "1.1.0"
    assert world.tags("1.2.0") == []  # never provisioned: Comet was told nothing
    assert set(world.tags("1.1.0")) == {"production", "endpoint:churn"}
    assert len(_predict(world.url)) == 3
