"""End to end through `mmm up --bot-port` with Slack configured (a FakeSlack for Slack): the
whole story of a gated deployment told by requests over HTTP, `mmm up` killed mid-rollout
and started again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from core.domain import Library
from mmm_bot.blocks import APPROVE
from mmm_bot.server import EVENTS_PATH
from tests.bot.harness import BOT_TOKEN, CHANNEL, SIGNING_SECRET, USERS
from tests.bot.test_control_plane import free_port
from tests.support.fake_slack import FakeSlack, action_body, command_body, post_signed
from tests.support.models import train_sklearn_regressor, write_golden

REPO = Path(__file__).resolve().parents[2]
MMM = Path(sys.executable).parent / "mmm"


def _has_bot_port() -> bool:
    shown = subprocess.run([str(MMM), "up", "--help"], capture_output=True, text=True)
    return "--bot-port" in shown.stdout


pytestmark = pytest.mark.slow


class Up:
    """A workspace, and `mmm up` on it with Slack configured."""

    def __init__(self, tmp_path: Path, slack: FakeSlack) -> None:
        self.home = tmp_path / "ws"
        self.slack = slack
        self.port, self.bot_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "MMM_HOME": str(self.home),
            "MMM_USER": "ops",
            "PYTHONPATH": str(REPO),
            "COMET_ERROR_TRACKING_ENABLE": "false",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def mmm(self, *args: str) -> str:
        done = subprocess.run([str(MMM), *args], env=self.env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def deployments(self) -> list[dict[str, object]]:
        return list(json.loads(self.mmm("status", "--json")))

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(MMM), "up", "--port", str(self.port), "--bot-port", str(self.bot_port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                up = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                bot = httpx.post(self.url, content=b"", timeout=1)  # unsigned: 401 once up
                if up.status_code == 200 and bot.status_code == 401:
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, "mmm up exited"
            assert time.monotonic() < deadline, "mmm up did not start"
            time.sleep(0.2)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(120)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.bot_port}{EVENTS_PATH}"


@pytest.fixture
def up(tmp_path: Path, slack: FakeSlack) -> Up:
    if not _has_bot_port():
        pytest.skip("`mmm up --bot-port` is not wired yet")
    u = Up(tmp_path, slack)
    u.mmm("init")
    settings = yaml.safe_load((u.home / "mmm.yaml").read_text())
    settings["slack"] = {"users": dict(USERS)}
    settings["defaults"] = {
        "gates": ["before_rollout"],
        "strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 4},
    }
    settings["worker"] = {"poll_s": 0.2, "lease_s": 3}
    (u.home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    artifact = train_sklearn_regressor(tmp_path / "models")
    golden = write_golden(artifact, Library.SKLEARN, tmp_path / "models")
    u.mmm("register", "churn", "--artifact", str(artifact), "--library", "sklearn",
          "--golden", str(golden))  # fmt: skip
    return u


def test_the_whole_story_through_mmm_up(up: Up, slack: FakeSlack) -> None:
    http = httpx.Client(timeout=30)
    up.start()
    try:
        deploy = command_body(
            "deploy churn 1 churn-scorer", "UALICE", CHANNEL, slack.response_url("deploy"), "t-1"
        )
        assert post_signed(http, up.url, SIGNING_SECRET, deploy).status_code == 200
        assert post_signed(http, up.url, SIGNING_SECRET, deploy, retry=1).status_code == 200
        assert "queued" in slack.wait_for(lambda: slack.answers("deploy"))[0]["text"]
        message = slack.wait_for(
            lambda: [m for m in slack.top_level(CHANNEL) if "Approve" in m.rendered()],
            120,
            "the message at the gate",
        )[0]
        [d] = up.deployments()
        dep = str(d["id"])
        value = next(
            e["value"]
            for b in message.blocks
            for e in b.get("elements", [])
            if e.get("action_id") == APPROVE
        )

        def click(user: str, name: str, trigger: str | None = None) -> int:
            body = action_body(
                APPROVE, value, user, CHANNEL, message.ts, slack.response_url(name), trigger
            )
            return post_signed(http, up.url, SIGNING_SECRET, body).status_code

        forged = action_body(APPROVE, value, "UBOB", CHANNEL, message.ts)
        assert post_signed(http, up.url, "a-guess", forged).status_code == 401
        assert click("UALICE", "alice") == 200
        assert "four-eyes" in slack.wait_for(lambda: slack.answers("alice"))[0]["text"]
        assert click("UNOBODY", "nobody") == 200
        assert "not mapped" in slack.wait_for(lambda: slack.answers("nobody"))[0]["text"]
        assert json.loads(up.mmm("status", dep, "--json"))["approvals"] == []

        assert click("UBOB", "bob-1") == 200
        assert click("UBOB", "bob-2") == 200  # a double click
        slack.wait_for(lambda: "Approved by bob" in message.rendered(), 60, "bob on the message")
        slack.wait_for(lambda: "bake:50" in message.rendered(), 120, "the first bake")
        up.kill()  # mid-rollout
        updates = message.updates
        up.start()
        slack.wait_for(lambda: "Succeeded" in message.rendered(), 180, "the end on the message")
        assert message.updates > updates
    finally:
        up.stop()
    final = json.loads(up.mmm("status", dep, "--json"))
    assert final["state"] == "succeeded"
    assert [a["by"] for a in final["approvals"]] == ["bob"]
    assert len(up.deployments()) == 1
    assert [m.ts for m in slack.top_level()] == [message.ts]
    audit = json.loads(up.mmm("audit", "--json"))
    slack_users = {(r["action"], r["actor"], r["detail"].get("slack_user")) for r in audit}
    assert ("deploy", "alice", "UALICE") in slack_users
    assert ("approve", "bob", "UBOB") in slack_users
    assert ("approve_refused", "alice", "UALICE") in slack_users
