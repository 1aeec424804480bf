"""End to end with the bot, the worker and the notifier in a process of their own, killed
mid-rollout and started again: the same message goes on being updated."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from mmm_bot.blocks import APPROVE
from mmm_bot.server import EVENTS_PATH
from tests.bot.harness import BOT_TOKEN, CHANNEL, SIGNING_SECRET, copy_workspace
from tests.support.fake_slack import FakeSlack, action_body, command_body, post_signed

ROOT = Path(__file__).resolve().parents[2]
BLUE_GREEN = {
    "gates": ["before_rollout"],
    "strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 3},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def control_plane(home: Path, port: int, slack: FakeSlack) -> Iterator[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "COMET_ERROR_TRACKING_ENABLE": "false",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bot.control_plane", str(home), str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        said = []
        for line in process.stdout:  # ends when the process does
            said.append(line)
            if line.startswith("ready"):
                break
        else:
            raise AssertionError("the control plane did not start:\n" + "".join(said))
        # keep reading, so a chatty process never blocks on a full pipe
        threading.Thread(target=said.extend, args=(process.stdout,), daemon=True).start()
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


@pytest.mark.slow
def test_killed_mid_rollout_and_restarted_it_keeps_updating_the_same_message(
    template: Path, tmp_path: Path, slack: FakeSlack
) -> None:
    home = copy_workspace(template, tmp_path / "ws", defaults=BLUE_GREEN)
    port = free_port()
    url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
    http = httpx.Client(timeout=30)
    with control_plane(home, port, slack) as first:
        body = command_body(
            "deploy churn 1 churn-scorer", "UALICE", CHANNEL, slack.response_url("deploy")
        )
        assert post_signed(http, url, SIGNING_SECRET, body).status_code == 200
        assert "queued" in slack.wait_for(lambda: slack.answers("deploy"))[0]["text"]
        message = slack.wait_for(
            lambda: [m for m in slack.top_level(CHANNEL) if "Approve" in m.rendered()],
            what="the message with its buttons",
        )[0]
        dep = message.metadata["event_payload"]["deployment_id"]
        value = next(
            e["value"]
            for b in message.blocks
            for e in b.get("elements", [])
            if e.get("action_id") == APPROVE
        )
        click = action_body(APPROVE, value, "UBOB", CHANNEL, message.ts, slack.response_url("ok"))
        assert post_signed(http, url, SIGNING_SECRET, click).status_code == 200
        slack.wait_for(lambda: "bake:50" in message.rendered(), what="the first bake")
        first.send_signal(signal.SIGKILL)  # mid-rollout: baking at 50 %
        first.wait(30)
    updates_before = message.updates

    with control_plane(home, port, slack):
        slack.wait_for(lambda: "Succeeded" in message.rendered(), 120, "the end on the message")
        assert message.updates > updates_before
        assert [m.ts for m in slack.top_level()] == [message.ts]  # no second message
        assert "Approved by bob" in message.rendered()
        # the bot answers on the same address after the restart
        body = command_body(f"status {dep}", "UALICE", CHANNEL, slack.response_url("status"))
        assert post_signed(http, url, SIGNING_SECRET, body).status_code == 200
        assert "succeeded" in str(slack.wait_for(lambda: slack.answers("status"))[0])
