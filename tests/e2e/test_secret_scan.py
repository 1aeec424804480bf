"""After a whole run on every real adapter, no secret that mmm reads is anywhere it left a
trace (SECURITY.md, "The test that proves it").

Distinctive fake secrets are set for every credential mmm reads (Comet, GitHub, Slack, AWS)
and for one of the user's own (`DB_PASSWORD`, which a deployment file names only as
`${DB_PASSWORD}`). `mmm up` (worker, Slack bot and notifier) and every command run as
processes of their own with them in their environment, every logger at DEBUG
(`tests.support.secret_scan`), against the fakes of Comet, GitHub and Slack and a moto
server: a version registered in Comet, a deployment with an env, a deployment over it
approved from Slack, a third aborted from Slack after its merge and provisioning, a
retirement; a Comet, a GitHub and a Slack error on the way. Then every place a secret could
land is searched: command output and logs, every file of the workspace and of the
processes' HOME and TMPDIR (SQLite rows and git objects too), the files, commits, branches
and pull requests on GitHub and every request GitHub and Comet were sent, Comet's registry
and experiments, Slack's messages, blocks, metadata and answers, and S3, SageMaker and
CloudWatch at three moments and at the end. Each credential may appear only in the
Authorization header of its own service.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import yaml

from core.domain import Library
from core.store.sqlite import SqliteStore
from mmm_bot.blocks import ABORT, APPROVE
from mmm_bot.server import EVENTS_PATH
from tests.e2e.conftest import Result, Workspace
from tests.support.fake_comet import FakeComet
from tests.support.fake_github import CheckPlan, FakeGitHub
from tests.support.fake_slack import FakeSlack, action_body, command_body, post_signed
from tests.support.models import train_sklearn_regressor, write_golden
from tests.support.moto_server import IMAGES, REGION, ROLE_ARN, Aws, aws  # noqa: F401
from tests.support.real_backends import REPO, WORKSPACE, model_files
from tests.support.secret_scan import (
    Scan,
    aws_places,
    comet_places,
    github_places,
    model_environments,
    slack_places,
)

# 2.5 to 3.5 minutes on a busy 2-core machine (a dozen `mmm` processes, each at DEBUG)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SECRETS = {
    "COMET_API_KEY": "sekrit-comet-7f3a9c2e51d04b68e1",
    "GITHUB_TOKEN": "ghp_sekritGitHub0c4e8a1f6b2d93a7",
    "SLACK_BOT_TOKEN": "xoxb-sekrit-slack-bot-5d2e7a91c3f0",
    "SLACK_SIGNING_SECRET": "sekrit-signing-8e1b4f6a2c7d0953",
    "SLACK_APP_TOKEN": "xapp-sekrit-slack-app-3c9f1e7b25d4",
    "AWS_ACCESS_KEY_ID": "AKIASEKRIT7F3A9C2E51",
    "AWS_SECRET_ACCESS_KEY": "sekrit-aws-secret-b68d04e51c2a9f3a7",
    "AWS_SESSION_TOKEN": "sekrit-aws-session-4b1d93c0e7a25f68",
    "DB_PASSWORD": "sekrit-db-password-91c3e5d7a2f4b0",
}
# With SLACK_APP_TOKEN set, `mmm up` would serve the bot over Socket Mode: only the commands
# (which read it, and announce what they run inline) get it.
NOT_IN_UP = {"SLACK_APP_TOKEN"}

MODEL = "churn_model"
ENDPOINT = "churn"
CHANNEL = "C0DEPLOY"
USERS = {"UALICE": "alice", "UBOB": "bob"}
ENV = {"LOG_LEVEL": "info", "DB_PASSWORD": "${DB_PASSWORD}"}
TERMINAL = ("succeeded", "failed", "aborted", "rolled_back")


class ScannedWorkspace(Workspace):
    """A workspace whose commands run with the secrets (`extra`), every logger at DEBUG, and
    whose output goes into `scan`."""

    extra: dict[str, str]
    scan: Scan

    def env(self, user: str) -> dict[str, str]:
        return {**super().env(user), **self.extra}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "tests.support.secret_scan", *args]

    def run(self, *args: str, user: str = "alice", timeout: float = 240) -> Result:
        proc = subprocess.run(
            self.command(*args),
            env=self.env(user),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home.parent,
        )
        self.scan.add(f"output of `mmm {' '.join(args)}`", proc.stdout + "\n" + proc.stderr)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def settled(self, ref: str, *states: str) -> str:
        """The state of deployment `ref` once it is one of `states` or has ended, run by
        `mmm up` alone: read from the store (`mmm status --wait` would run it in its own
        process too whenever the worker's heartbeat lapses during a long step)."""
        store = SqliteStore(self.home / "state.db")
        try:
            deadline = time.monotonic() + 240
            while True:
                d = store.get(ref)
                assert d is not None, ref
                if d.state.value in (*states, *TERMINAL) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:
            store.close()
        assert d.state.value in states, d.model_dump_json()
        return d.state.value


@dataclass
class World:
    ws: ScannedWorkspace
    comet: FakeComet
    gh: FakeGitHub
    slack: FakeSlack
    aws: Aws
    tmp: Path
    env_dirs: list[Path]
    up_log: Path
    health_url: str = ""
    bot_url: str = ""
    up: subprocess.Popen[bytes] | None = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def client(self, service: str) -> Any:
        return self.aws.client(service)

    def start_up(self, sink: IO[str]) -> None:
        env = {k: v for k, v in self.ws.env("ops").items() if k not in NOT_IN_UP}
        self.up = subprocess.Popen(
            self.ws.command("up", "--port", "0", "--bot-port", "0"),
            env=env,
            stdout=sink,
            stderr=sink,
            cwd=self.ws.home.parent,
        )
        for _ in range(1200):
            text = self.up_log.read_text()
            health = re.search(r"health and metrics on (http://\S+?),", text)
            bot = re.search(r"Slack bot: on (http://\S+)", text)
            if health and bot:
                self.health_url, self.bot_url = health[1], bot[1] + EVENTS_PATH
                return
            assert self.up.poll() is None, text
            time.sleep(0.1)
        raise AssertionError(self.up_log.read_text())

    def stop_up(self) -> None:
        if self.up is not None and self.up.poll() is None:
            self.up.terminate()
            assert self.up.wait(timeout=120) == 0, self.up_log.read_text()[-3000:]

    def click(self, action_id: str, deployment: str, user: str, answer: str) -> None:
        """A click on the button `action_id` of the deployment's message, signed as Slack
        signs it."""
        message = self.slack.wait_for(
            lambda: self._with_button(deployment, action_id), 120, f"{action_id} on {deployment}"
        )
        value = next(
            e["value"]
            for b in message.blocks
            for e in b.get("elements", [])
            if e.get("action_id") == action_id
        )
        body = action_body(
            action_id, value, user, CHANNEL, message.ts, self.slack.response_url(answer)
        )
        signed = post_signed(self.http, self.bot_url, SECRETS["SLACK_SIGNING_SECRET"], body)
        assert signed.status_code == 200, signed.text
        self.slack.wait_for(lambda: self.slack.answers(answer), 60, f"answer {answer}")

    def _with_button(self, deployment: str, action_id: str) -> Any:
        m = self.slack.message_of(deployment)
        return m if m is not None and action_id in m.rendered() else None

    def command(self, text: str, user: str, answer: str) -> None:
        body = command_body(text, user, CHANNEL, self.slack.response_url(answer))
        signed = post_signed(self.http, self.bot_url, SECRETS["SLACK_SIGNING_SECRET"], body)
        assert signed.status_code == 200, signed.text
        self.slack.wait_for(lambda: self.slack.answers(answer), 60, f"answer {answer}")


@pytest.fixture
def world(tmp_path: Path, aws: Aws) -> Iterator[World]:  # noqa: F811
    comet = FakeComet(api_key=SECRETS["COMET_API_KEY"])
    gh = FakeGitHub(REPO, token=SECRETS["GITHUB_TOKEN"])
    slack = FakeSlack(token=SECRETS["SLACK_BOT_TOKEN"])
    with comet, gh, slack:
        gh.checks = CheckPlan(name="mmm-golden", pending_polls=1)
        for seed, version in ((0, "1.0.0"), (1, "1.1.0")):
            comet.add_version(WORKSPACE, MODEL, version, model_files(tmp_path, seed))
        ws = ScannedWorkspace(home=tmp_path / "ws", models=tmp_path / "models")
        ws.scan = Scan()
        home, tmpdir = tmp_path / "home", tmp_path / "tmpdir"
        for folder in (home, tmpdir):
            folder.mkdir()
        ws.extra = {
            **SECRETS,
            # Where libraries keep their own files: searched too.
            "HOME": str(home),
            "TMPDIR": str(tmpdir),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "COMET_URL_OVERRIDE": comet.url_override,
            "COMET_ERROR_TRACKING_ENABLE": "false",
            "COMET_DISABLE_AUTO_LOGGING": "1",
            "COMET_HTTP_SESSION_RETRY_TOTAL": "0",
            "COMET_TIMEOUT_API": "5",
            "SLACK_API_URL": slack.api_url,
        }
        ws.ok("init")
        settings = yaml.safe_load((ws.home / "mmm.yaml").read_text())
        settings["backends"].update(
            registry="comet",
            codehost="github",
            artifacts="s3",
            serving="sagemaker",
            monitor="cloudwatch",
        )
        settings["aws"].update(endpoint_url=aws.url, role_arn=ROLE_ARN, images=IMAGES)
        settings["defaults"]["regions"] = [REGION]
        settings["comet"] = {"workspace": WORKSPACE}
        settings["github"] = {
            "repo": REPO,
            "base_url": gh.api_url,
            "checks_timeout_s": 600,
            "aws_role_arn": "arn:aws:iam::123456789012:role/mmm-golden-ci",
        }
        settings["slack"] = {"users": dict(USERS), "channel": CHANNEL}
        settings["worker"] = {"poll_s": 0.1, "lease_s": 10, "backoff_s": 0.1}
        (ws.home / "mmm.yaml").write_text(yaml.safe_dump(settings))
        w = World(ws, comet, gh, slack, aws, tmp_path, [home, tmpdir], tmp_path / "up.log")
        try:
            yield w
        finally:
            w.stop_up()
            w.http.close()


def _spec(tmp: Path, name: str, **spec: Any) -> str:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"endpoint": ENDPOINT, **spec}))
    return str(path)


def test_no_secret_lands_anywhere_after_a_whole_run(world: World) -> None:
    ws, gh, comet, slack, scan = world.ws, world.gh, world.comet, world.slack, world.ws.scan

    # A version registered in Comet by the command (an experiment, its files, a comment).
    artifact = train_sklearn_regressor(world.tmp / "own", seed=2)
    golden = write_golden(artifact, Library.SKLEARN, world.tmp / "own")
    registered = ws.ok(
        "register", MODEL, "--artifact", str(artifact), "--library", "sklearn",
        "--golden", str(golden), "--owner", "risk",
    )  # fmt: skip
    assert registered.out.strip() == "1.2.0"

    with world.up_log.open("w") as sink:
        world.start_up(sink)

        # 1. A deployment with an env naming the user's secret by reference; Comet answers
        #    500 once on the way.
        comet.fail("write/registry-model/item/stage", status=500, times=1)
        first = ws.ok(
            "deploy", MODEL, "1.0.0", "-f", _spec(world.tmp, "first", env=ENV), "--detach"
        ).out.strip()
        ws.settled(first, "succeeded")
        scan.add_all(aws_places(world.client, "after the first deployment:"))

        # 2. A deployment over it, gated, approved from Slack by a second person; GitHub
        #    answers 502 once when its pull request opens.
        gh.fail("POST", r"/pulls$", status=502, times=1)
        gated = _spec(world.tmp, "gated", gates=["before_rollout"], env=ENV)
        second = ws.ok("deploy", MODEL, "1.1.0", "-f", gated, "--detach").out.strip()
        ws.settled(second, "waiting_approval")
        scan.add_all(aws_places(world.client, "at the gate of the second:"))
        environments = [model_environments(world.client)]
        world.click(APPROVE, second, "UBOB", "approve")
        slack.fail("chat.update", "invalid_auth")  # a refused update is logged
        ws.settled(second, "succeeded")

        # 3. A third, merged and provisioned, aborted from Slack at its gate.
        third = ws.ok("deploy", MODEL, "1.2.0", "-f", gated, "--detach").out.strip()
        ws.settled(third, "waiting_approval")
        scan.add_all(aws_places(world.client, "at the gate of the third:"))
        environments.append(model_environments(world.client))
        world.click(ABORT, third, "UBOB", "abort")
        ws.settled(third, "aborted")

        # 4. The first version, archived, retired.
        retired = ws.ok("retire", MODEL, "1.0.0", "--detach").out.strip()
        ws.settled(retired, "succeeded")

        world.command("status", "UALICE", "status")
        for shown in (["status"], ["audit"], ["models"], ["usage", MODEL]):
            ws.ok(*shown, "--json")
        for route in ("/healthz", "/metrics"):
            scan.add(f"mmm up {route}", world.http.get(world.health_url + route).text)
        world.stop_up()
    scan.add("output of `mmm up`", world.up_log.read_bytes())

    # The run did what it says, so the places below hold what such a run leaves.
    assert gh.pull_of(f"mmm/{third}-revert") is not None  # the abort reverted a merge
    assert {"retired"} <= set(comet.version(WORKSPACE, MODEL, "1.0.0").tags)
    assert len(slack.top_level(CHANNEL)) >= 4 and slack.responses

    files = ws.home, *world.env_dirs
    counted = {f.name: scan.add_files(f, f.name) for f in files}
    scan.add_all(github_places(gh))
    scan.add_all(comet_places(comet))
    scan.add_all(slack_places(slack))
    scan.add_all(aws_places(world.client, "at the end:"))
    print(f"searched {len(scan.places)} places, {scan.size:,} bytes; files: {counted}")

    leaks = scan.leaks(SECRETS)
    assert not leaks, "secrets found:\n" + "\n".join(leaks)

    # Each credential went where it belongs, and only there: its own service's header.
    assert {r.authorization for r in comet.requests} == {SECRETS["COMET_API_KEY"]}
    assert {r.authorization for r in gh.requests} == {f"token {SECRETS['GITHUB_TOKEN']}"}
    assert {c.authorization for c in slack.calls} == {f"Bearer {SECRETS['SLACK_BOT_TOKEN']}"}

    # A SageMaker model's environment is the deployment file's env as written (the reference,
    # never its value: SECURITY.md, "Known limits") and mmm's own MMM_* variables.
    for seen in environments:
        assert seen, "no SageMaker model to look at"
        for name, env in seen.items():
            assert {k: v for k, v in env.items() if not k.startswith("MMM_")} == ENV, name
