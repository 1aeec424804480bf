"""The bot as `mmm up` runs it, in this process: the bot over HTTP on a free port, a worker,
and the notifications following the feed with the Slack notifier; Slack is a FakeSlack.

Requests go to the bot over real HTTP, signed as Slack signs them; tests look at what
reached the fake (messages, updates, answers on response URLs) and at the store.
"""

from __future__ import annotations

import itertools
import shutil
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import yaml

from core.bootstrap import load_workspace
from core.domain import Deployment, Library
from core.notify import Notifications
from core.service import Service
from core.store.sqlite import SqliteStore
from mmm_bot import SlackConfig, SlackNotifier, start_bot
from mmm_bot.server import EVENTS_PATH
from tests.support.fake_slack import FakeSlack, action_body, command_body, post_signed
from tests.support.models import train_sklearn_regressor, write_golden
from tests.support.worker_process import fake_ports

BOT_TOKEN = "xoxb-test-bot-token-0123456789"
SIGNING_SECRET = "test-signing-secret-abcdef0123456789"
CHANNEL = "C0DEPLOY"
USERS = {"UALICE": "alice", "UBOB": "bob", "UCAROL": "carol"}


def settings(**extra: Any) -> dict[str, Any]:
    """mmm.yaml of the tests: a gate before rollout, three Slack users mapped."""
    slack = {"users": dict(USERS), **extra.pop("slack", {})}
    base: dict[str, Any] = {
        "worker": {"poll_s": 0.05, "backoff_s": 0, "lease_s": 5},
        "defaults": {"gates": ["before_rollout"]},
        "slack": slack,
    }
    base.update(extra)
    return base


def make_template(root: Path) -> Path:
    """A workspace with model churn v1 registered (trained, checked): copied by each test."""
    home = root / "template"
    home.mkdir(parents=True)
    (home / "mmm.yaml").write_text(yaml.safe_dump(settings()))
    svc = Service(load_workspace(home), SqliteStore(home / "state.db"), fake_ports(home), "alice")
    artifact = train_sklearn_regressor(root / "models")
    golden = write_golden(artifact, Library.SKLEARN, root / "models")
    svc.register("churn", artifact, "sklearn", golden)
    svc.close()
    return home


def copy_workspace(template: Path, dest: Path, **extra: Any) -> Path:
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns("tmp"))
    (dest / "mmm.yaml").write_text(yaml.safe_dump(settings(**extra)))
    return dest


class BotHarness:
    """The bot, a worker and the Slack notifier over one workspace (see the module)."""

    def __init__(self, home: Path, slack: FakeSlack, worker: bool = True) -> None:
        self.home = home
        self.slack = slack
        self.svc = Service(
            load_workspace(home), SqliteStore(home / "state.db"), fake_ports(home), "mmm-up"
        )
        self.config = SlackConfig(
            bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=slack.api_url
        )
        self.svc.ports.notifier = SlackNotifier.for_service(self.svc, self.config)
        self._stack = ExitStack()
        self._stop = threading.Event()
        self._names = itertools.count(1)
        self.bot = start_bot(self.svc, self.config, port=0)
        self._stack.callback(self.bot.stop)
        self.http = self._stack.enter_context(httpx.Client(timeout=30))
        if worker:
            w = self.svc.worker()
            thread = threading.Thread(target=w.run_forever, args=(self._stop,), daemon=True)
            thread.start()
            self._stack.callback(thread.join, 30)
            self._stack.callback(self._stop.set)
        notifications = Notifications(
            self.svc.store, self.svc.ports.notifier, lease_s=5, owner="test-notifier"
        )
        self._stack.enter_context(notifications.running(poll_s=0.05))

    @property
    def events_url(self) -> str:
        return self.bot.url + EVENTS_PATH

    def close(self) -> None:
        self._stack.close()
        self.svc.close()

    # ------------------------------------------------------------ requests

    def command(
        self,
        text: str,
        user: str,
        channel: str = CHANNEL,
        trigger_id: str | None = None,
        retry: int | None = None,
        secret: str = SIGNING_SECRET,
        at: float | None = None,
    ) -> tuple[httpx.Response, str]:
        """`/mmm TEXT` from `user`; returns the HTTP answer and the response URL's name."""
        name = f"answer-{next(self._names)}"
        body = command_body(text, user, channel, self.slack.response_url(name), trigger_id)
        return post_signed(self.http, self.events_url, secret, body, at, retry), name

    def click(
        self,
        action_id: str,
        value: str,
        user: str,
        message_ts: str = "1.000000",
        trigger_id: str | None = None,
        retry: int | None = None,
    ) -> tuple[httpx.Response, str]:
        """A click on a button carrying `value`; returns the HTTP answer and the name of the
        response URL."""
        name = f"answer-{next(self._names)}"
        body = action_body(
            action_id,
            value,
            user,
            CHANNEL,
            message_ts,
            self.slack.response_url(name),
            trigger_id,
        )
        return post_signed(self.http, self.events_url, SIGNING_SECRET, body, retry=retry), name

    def answer(self, name: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """The first answer posted to response URL `name` (waits for it)."""
        found = self.slack.wait_for(lambda: self.slack.answers(name), timeout_s, f"answer {name}")
        return dict(found[0])

    def one_answer(self, *names: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """The one answer posted to any of the response URLs `names` (for clicks of which
        only one acts: whichever got there first answers)."""
        found = self.slack.wait_for(
            lambda: [a for n in names for a in self.slack.answers(n)], timeout_s, f"{names}"
        )
        assert len(found) == 1, found
        return dict(found[0])

    def answer_text(self, name: str) -> str:
        return str(self.answer(name).get("text", ""))

    # ------------------------------------------------------------ state

    def deployments(self) -> list[Deployment]:
        return self.svc.deployments()

    def wait_state(self, deployment_id: str, *states: str, timeout_s: float = 60.0) -> Deployment:
        def reached() -> Deployment | None:
            d = self.svc.get(deployment_id)
            return d if d.state.value in states else None

        found: Deployment = self.slack.wait_for(reached, timeout_s, f"{deployment_id} in {states}")
        return found

    def wait_message(self, deployment_id: str, contains: str, timeout_s: float = 60.0) -> Any:
        """The deployment's message, once its rendering contains `contains`."""

        def shown() -> Any:
            m = self.slack.message_of(deployment_id)
            return m if m is not None and contains in m.rendered() else None

        return self.slack.wait_for(shown, timeout_s, f"message of {deployment_id}: {contains!r}")

    def buttons(self, deployment_id: str) -> dict[str, str]:
        """action_id -> value of the buttons on the deployment's message now."""
        m = self.slack.message_of(deployment_id)
        assert m is not None
        out = {}
        for block in m.blocks:
            for element in block.get("elements", []):
                if element.get("type") == "button":
                    out[element["action_id"]] = element["value"]
        return out
