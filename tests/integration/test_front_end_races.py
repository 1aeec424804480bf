"""The CLI, the dashboard and the Slack bot acting on the same deployments at the same moment:
no update lost, no effect doubled, and every refusal explained to the one refused.

Each race starts its sides together behind a barrier (threads in this process; the real
`mmm` command in processes of its own, released by one line on stdin) and repeats over
rounds, on the real store (the SQLite file; DynamoDB on moto where it is cheap) and through
the front ends' own code: signed requests to the bot over HTTP (tests/bot/harness.py), the
dashboard's actions with their confirmations under Pilot, `mmm` as a command. Endpoints,
alarms and the repository are the file-backed recording fakes, shared by every process.
What the rounds must show holds whichever side gets there first; the few interleavings a
barrier cannot promise are forced, each in a test of its own, by holding one side inside
a port or the store until the other has gone by.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

import tests.bot.harness
from core.bootstrap import build_store, load_workspace
from core.domain import TERMINAL_STATES, Deployment, DeploymentState, Library, VersionStatus
from core.events import Approved
from core.service import BadRequest, Service
from core.service.rollback import served_before
from core.store import DeploymentQuery, Store
from core.store.dynamodb import DynamoStore
from core.store.sqlite import SqliteStore
from mmm_bot.blocks import ABORT, APPROVE
from mmm_tui.app import MmmApp
from mmm_tui.screens.deploy_form import DeployRequest
from mmm_tui.screens.dialogs import ConfirmScreen
from tests.bot.harness import BOT_TOKEN, CHANNEL, BotHarness, copy_workspace, settings
from tests.integration.conftest import Files, MakeService, register_two
from tests.support.fake_slack import FakeSlack
from tests.support.front_ends import (
    PATIENCE_S,
    Cli,
    executions,
    log_executions,
    run_twice,
    started,
    stop_all,
    together,
)
from tests.support.models import train_sklearn_regressor, write_golden
from tests.support.moto_server import REGION, Aws, aws_as_left  # noqa: F401
from tests.support.worker_process import fake_ports

# A rollout that waits twice for a person: before its first traffic step, and between steps.
TWO_GATES: dict[str, Any] = {
    "endpoint": "churn-scorer",
    "gates": ["before_rollout", "between_steps"],
    "strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 0},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_command_left() -> Iterator[None]:
    yield
    stop_all()


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with churn v1 and v2 registered (two regressors), copied by each test."""
    root = tmp_path_factory.mktemp("front-end-races")
    home = root / "template"
    home.mkdir()
    (home / "mmm.yaml").write_text(yaml.safe_dump(settings()))
    svc = Service(load_workspace(home), SqliteStore(home / "state.db"), fake_ports(home), "alice")
    for seed in (0, 1):
        artifact = train_sklearn_regressor(root / "models", seed=seed)
        golden = write_golden(artifact, Library.SKLEARN, root / "models")
        svc.register("churn", artifact, "sklearn", golden, "risk")
    svc.close()
    return home


class Front:
    """One workspace (a copy of the template) and services on it as anyone: the store
    mmm.yaml names, the file-backed fakes every process shares."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._opened: list[Service] = []

    def service(self, actor: str) -> Service:
        ws = load_workspace(self.home)
        svc = Service(ws, build_store(ws), fake_ports(self.home), actor)
        self._opened.append(svc)
        return svc

    def close(self) -> None:
        for svc in self._opened:
            svc.close()


# Deployments started outside Slack are announced in the channel (their messages carry the
# buttons); root may force a retirement.
EXTRA: dict[str, Any] = {"slack": {"channel": CHANNEL}, "policy": {"admins": ["root"]}}


@pytest.fixture
def front(template: Path, tmp_path: Path) -> Iterator[Front]:
    f = Front(copy_workspace(template, tmp_path / "ws", **EXTRA))
    yield f
    f.close()


@pytest.fixture
def dynamo_front(template: Path, tmp_path: Path, aws_as_left: Aws) -> Iterator[Front]:  # noqa: F811
    """The same, with the state in a DynamoDB table of its own on the moto server."""
    table = f"mmm-races-{uuid.uuid4().hex[:8]}"
    aws = {"region": REGION, "endpoint_url": aws_as_left.url, "table": table}
    f = Front(
        copy_workspace(template, tmp_path / "ws", backends={"store": "dynamodb"}, aws=aws, **EXTRA)
    )
    yield f
    f.close()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN) as fake:
        yield fake


@pytest.fixture
def ran(tmp_path: Path) -> Iterator[Path]:
    """The file every worker of the test (here and in `mmm`'s processes) logs its commands to."""
    path = tmp_path / "executions.jsonl"
    with log_executions(path):
        yield path


def open_bot(front: Front, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> BotHarness:
    """The bot, a worker and the Slack notifier, as `mmm up` runs them, on the store mmm.yaml
    names."""
    ws = load_workspace(front.home)
    monkeypatch.setattr(tests.bot.harness, "SqliteStore", lambda path: build_store(ws))
    return BotHarness(front.home, slack)


@pytest.fixture
def bot(
    front: Front, slack: FakeSlack, ran: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BotHarness]:
    h = open_bot(front, slack, monkeypatch)
    yield h
    h.close()


def deploy_file(where: Path, spec: dict[str, Any]) -> Path:
    f = where / f"deploy-{len(list(where.glob('deploy-*')))}.yaml"
    f.write_text(json.dumps(spec))  # JSON is YAML
    return f


def weights(svc: Service, endpoint: str = "churn-scorer") -> dict[str, float]:
    config = svc.ports.serving.get_endpoint(endpoint, "local")
    return {} if config is None else {v.name: v.weight for v in config.variants}


def status_of(svc: Service, version: str) -> str:
    return svc.ports.registry.get("churn", version).status.value


# ---------------------------------------------------------------- forced interleavings


def test_the_version_a_rollout_replaces_is_not_retired_before_the_rollout_ends(
    make_service: MakeService, model_files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollout of v2 has drained v1 and is marking v2 production (which archives v1):
    retiring v1 now, from the dashboard or the CLI, is refused, naming the rollout. Were it
    let in, the rollout would mark the retired v1 archived again, and an abort of the
    rollout would put v1 back on the endpoint after the retirement removed it."""
    svc = make_service("alice")
    register_two(svc, model_files)
    svc.run(svc.deploy("churn", "1", "churn-scorer"))
    registry = svc.ports.registry
    inside, release = threading.Event(), threading.Event()
    set_status = registry.set_status

    def held(name: str, version: str, status: VersionStatus, *args: Any, **kw: Any) -> Any:
        if status is VersionStatus.PRODUCTION and not release.is_set():
            inside.set()
            release.wait(PATIENCE_S)
        return set_status(name, version, status, *args, **kw)

    monkeypatch.setattr(registry, "set_status", held)
    retirer = make_service("bob")  # what the dashboard's retire and `mmm retire` call
    d = svc.deploy("churn", "2", "churn-scorer")
    rollout = threading.Thread(target=svc.run, args=(d,))
    rollout.start()
    try:
        assert inside.wait(PATIENCE_S)
        assert weights(svc) == {"churn-v2": 100.0}  # v1 drained: it serves nowhere now
        with pytest.raises(BadRequest, match=f"churn v1 .*{d.id}") as refused:
            retirer.retire("churn", "1")
        assert "wait for it, or abort it" in str(refused.value)
    finally:
        release.set()
        rollout.join(PATIENCE_S)
    assert svc.get(d.id).state is DeploymentState.SUCCEEDED
    assert status_of(svc, "1") == "archived"
    # once the rollout has ended, the retirement goes ahead and its status stands
    retired = retirer.run(retirer.retire("churn", "1"))
    assert retired.state is DeploymentState.SUCCEEDED
    assert status_of(svc, "1") == "retired"
    assert weights(svc) == {"churn-v2": 100.0}


def test_an_approval_that_lost_the_race_never_passes_the_next_gate(
    make_service: MakeService, model_files: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob runs `mmm approve` while the deployment waits at before_rollout; carol's approval
    is saved first and the rollout reaches between_steps before bob's is: bob's is refused,
    saying who passed the gate he meant and where it waits now. It must never pass a gate
    bob was not asked about."""
    svc = make_service("alice")
    register_two(svc, model_files)
    d = svc.run(svc.deploy("churn", "1", file=deploy_file(tmp_path, TWO_GATES)))
    assert d.waiting_at == "before_rollout"
    carol, bob = make_service("carol"), make_service("bob")
    save = bob.store.save
    overtaken: list[str] = []

    def late(dep: Any, *args: Any, **kw: Any) -> Any:
        if dep.id == d.id and not overtaken:  # between bob's read and his write
            overtaken.append(carol.run(carol.approve(d.id)).waiting_at or "")
        return save(dep, *args, **kw)

    monkeypatch.setattr(bob.store, "save", late)
    with pytest.raises(BadRequest) as refused:
        bob.approve(d.id)  # as `mmm approve ID` calls it
    assert overtaken == ["between_steps"]
    message = str(refused.value)
    assert "carol approved it" in message and "before_rollout" in message, message
    assert "between_steps" in message, message
    now = svc.get(d.id)
    assert now.waiting_at == "between_steps"
    assert [(a.by, a.gate) for a in now.approvals] == [("carol", "before_rollout")]
    assert [r.actor for r in svc.audit_log(d.id) if r.action == "approve"] == ["carol"]
    (lost,) = [r for r in svc.audit_log(d.id) if r.action == "approve_refused"]
    assert (lost.actor, lost.detail["reason"]) == ("bob", message)


@pytest.mark.anyio
async def test_the_dashboard_approves_only_the_gate_its_confirmation_named(
    front: Front, tmp_path: Path
) -> None:
    """bob's dashboard asks him to confirm passing before_rollout; before he does, carol
    approves from the CLI, which runs the rollout to between_steps. bob's confirmation is
    then refused in a notification, and between_steps still waits for a person."""
    svc = front.service("alice")
    d = svc.run(svc.deploy("churn", "1", file=deploy_file(tmp_path, TWO_GATES)))
    app = MmmApp(front.service("bob"))
    async with app.run_test(size=(120, 40)) as pilot:
        app.actions.approve(d.id)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await wait_for(pilot, lambda: "passes gate" in screen_text(app), "what it passes")
        assert "passes gate before_rollout as bob" in screen_text(app)
        [cli] = started(Cli(front.home, "carol", "approve", d.id))
        cli.go()
        carol = await anyio.to_thread.run_sync(cli.result)
        assert carol.code == 0, carol.err
        assert svc.get(d.id).waiting_at == "between_steps"
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: refusals(app) or len(svc.get(d.id).approvals) > 1,
            "bob's refusal (or his approval)",
        )
        [refusal] = refusals(app)
        assert "carol approved it" in refusal and "between_steps" in refusal, refusal
    now = svc.get(d.id)
    assert now.waiting_at == "between_steps"
    assert [(a.by, a.gate) for a in now.approvals] == [("carol", "before_rollout")]


# ---------------------------------------------------------------- the sides of a race

ROUNDS = 2  # per order of sides, in `make test`
MANY = 12  # in the slow run
ROUND_COUNTS = [ROUNDS, pytest.param(MANY, marks=pytest.mark.slow)]


@dataclass
class Said:
    """What one side was told, and whether what it asked for was done."""

    front: str  # cli, bot or dashboard
    who: str
    accepted: bool
    text: str


class CliSide:
    """`mmm ARGS` as `who` in a process of its own, started now, run when the race starts."""

    front = "cli"

    def __init__(self, front: Front, who: str, *args: str, ran: Path) -> None:
        self.who = who
        self.cli = Cli(front.home, who, *args, executions=ran)

    def prepare(self) -> None:
        self.cli.ready()

    def firings(self) -> list[Callable[[], Any]]:
        return [self.cli.go]

    def finished(self) -> bool:
        return self.cli.proc.poll() is not None

    def said(self) -> Said:
        r = self.cli.result()
        # done, or refused as a request that cannot be carried out now: one line, exit 2
        assert r.code in (0, 2), r.err
        if r.code:
            assert r.error, r.err
            return Said("cli", self.who, False, r.error)
        return Said("cli", self.who, True, r.err)


class BotSide:
    """A Slack user's request to the bot, signed, over HTTP: a click on a button of the
    deployment's message, or `/mmm TEXT`. `deliveries` > 1: Slack delivers it again (same
    trigger id, with X-Slack-Retry-Num), at the same moment."""

    front = "bot"

    def __init__(
        self,
        h: BotHarness,
        user: str,
        done: str,
        click: tuple[str, Deployment] | None = None,
        command: str | None = None,
        deliveries: int = 1,
    ) -> None:
        self.h, self.user, self.done = h, user, done
        self.who = USERS[user]
        self.click, self.command, self.deliveries = click, command, deliveries
        self.trigger = f"trigger-{uuid.uuid4().hex}"
        self.names: list[str] = []

    def prepare(self) -> None:
        if self.click is not None:
            action, d = self.click
            message = self.h.wait_message(d.id, "Approve")
            self.value, self.ts = self.h.buttons(d.id)[action], message.ts

    def _deliver(self, retry: int | None) -> None:
        if self.click is not None:
            response, name = self.h.click(
                self.click[0], self.value, self.user, self.ts, self.trigger, retry
            )
        else:
            assert self.command is not None
            response, name = self.h.command(self.command, self.user, CHANNEL, self.trigger, retry)
        assert response.status_code == 200
        self.names.append(name)

    def firings(self) -> list[Callable[[], Any]]:
        return [lambda n=n: self._deliver(n or None) for n in range(self.deliveries)]

    def said(self) -> Said:
        answer = self.h.one_answer(*self.names)  # one answer, however often delivered
        assert answer["response_type"] == "ephemeral"
        text = str(answer["text"])
        assert "\n" not in text
        return Said("bot", self.who, self.done in text, text)


class DashboardSide:
    """The dashboard's own call for an action it has no confirmation of its own to drive
    here (the deploy form's submit: `DeployRequest.deploy`)."""

    front = "dashboard"

    def __init__(self, svc: Service, call: Callable[[Any], Any]) -> None:
        self.who = svc.actor
        self.app = _AppOf(svc)
        self.call = call
        self.outcome: Said | None = None

    def prepare(self) -> None:
        pass

    def _fire(self) -> None:
        try:
            d = self.call(self.app)
            self.outcome = Said("dashboard", self.who, True, d.id)
        except BadRequest as exc:
            self.outcome = Said("dashboard", self.who, False, str(exc))

    def firings(self) -> list[Callable[[], Any]]:
        return [self._fire]

    def finished(self) -> bool:
        return self.outcome is not None

    def said(self) -> Said:
        assert self.outcome is not None
        return self.outcome


@dataclass
class _AppOf:
    service: Service


USERS = tests.bot.harness.USERS


Side = Any  # CliSide | BotSide | DashboardSide | RetiringDashboard


def race(*sides: Side) -> list[Said]:
    """Every side's request at one moment; what each side was told."""
    for side in sides:
        side.prepare()
    together(*(fire for side in sides for fire in side.firings()))
    return [side.said() for side in sides]


# ---------------------------------------------------------------- what must hold


def gated(front: Front, h: BotHarness, n: int, version: str = "1") -> list[Deployment]:
    """`n` deployments of churn by alice, each on an endpoint of its own, waiting at their
    gate with their message in the channel."""
    alice = front.service("alice")
    tag = uuid.uuid4().hex[:6]
    made = [alice.deploy("churn", version, f"race-{tag}-{i}") for i in range(n)]
    for d in made:
        h.wait_state(d.id, "waiting_approval", timeout_s=PATIENCE_S)
        h.wait_message(d.id, "Approve", timeout_s=PATIENCE_S)
    return [alice.get(d.id) for d in made]


def settled(h: BotHarness, deployment_id: str) -> Deployment:
    return h.wait_state(deployment_id, *(s.value for s in TERMINAL_STATES), timeout_s=PATIENCE_S)


def actors(h: BotHarness, deployment_id: str, action: str) -> list[str]:
    """Who did `action` to the deployment, oldest first, by the audit history; each record
    from the bot names the Slack user too."""
    records = [r for r in h.svc.audit_log(deployment_id) if r.action == action]
    return [r.actor + ("@slack" if "slack_user" in r.detail else "") for r in reversed(records)]


def as_audited(said: Said) -> str:
    return said.who + ("@slack" if said.front == "bot" else "")


def one_message(h: BotHarness, deployment_id: str, contains: str) -> str:
    """The deployment's one message in the channel, once it shows `contains`."""
    shown = h.wait_message(deployment_id, contains, timeout_s=PATIENCE_S).rendered()
    ours = [
        m
        for m in h.slack.top_level()
        if ((m.metadata or {}).get("event_payload") or {}).get("deployment_id") == deployment_id
    ]
    assert len(ours) == 1, ours
    return str(shown)


def updates_of(h: BotHarness, deployment_id: str) -> list[str]:
    """Every version of the deployment's message Slack was sent (post, then updates)."""
    message = h.slack.message_of(deployment_id)
    assert message is not None
    sent = h.slack.calls_of("chat.postMessage") + h.slack.calls_of("chat.update")
    return [
        json.dumps(c.args)
        for c in sent
        if c.args.get("ts") == message.ts or deployment_id in json.dumps(c.args.get("metadata"))
    ]


def check_approve_or_abort(
    h: BotHarness, d: Deployment, approve: Said, abort: Said, ran: Path
) -> str:
    """One approve and one abort at once: each done or refused with the reason; the end as
    the accepted ones make it; each once in the audit, the step after the gate once."""
    end = settled(h, d.id)
    assert approve.accepted or abort.accepted, (approve, abort)
    assert actors(h, d.id, "approve") == ([as_audited(approve)] if approve.accepted else [])
    assert actors(h, d.id, "abort") == ([as_audited(abort)] if abort.accepted else [])
    assert [a.by for a in end.approvals] == ([approve.who] if approve.accepted else [])
    if abort.accepted:
        assert end.state is DeploymentState.ABORTED, end.state
        assert (end.error or "").startswith(f"aborted by {abort.who}"), end.error
    else:  # too late: it had ended, and the one who asked is told so
        assert end.state is DeploymentState.SUCCEEDED, end.state
        assert "already" in abort.text and "succeeded" in abort.text, abort.text
    if not approve.accepted:  # the abort went first, and the approver is told by whom
        assert f"aborted by {abort.who}" in approve.text, approve.text
    assert not run_twice(ran, d.id)
    shown = one_message(h, d.id, "*Aborted*" if abort.accepted else "*Succeeded*")
    assert (f"Approved by {approve.who}" in shown) == approve.accepted, shown
    assert (f"Abort requested by {abort.who}" in shown) == abort.accepted, shown
    assert APPROVE not in shown  # the buttons gave way
    if not approve.accepted:
        return "abort first, approve refused"
    return "approve, then abort" if abort.accepted else "approve, abort refused (ended)"


def check_one_approval(h: BotHarness, d: Deployment, saids: list[Said], ran: Path) -> str:
    """Approvals at once on a gate that needs one: one counts, the others are told who
    passed it; the gate passes once and the step after it runs once."""
    end = h.wait_state(d.id, "succeeded", timeout_s=PATIENCE_S)
    won = [s for s in saids if s.accepted]
    assert len(won) == 1, saids
    [winner] = won
    assert [a.by for a in end.approvals] == [winner.who]
    assert actors(h, d.id, "approve") == [as_audited(winner)]
    assert sum(isinstance(e, Approved) for e in end.events) == 1
    for loser in saids:
        if loser is not winner:
            assert f"{winner.who} approved it" in loser.text, loser.text
    after_gate = [r["key"] for r in executions(ran, d.id) if r["key"].endswith("/shift:100")]
    assert len(after_gate) == 1, after_gate
    assert [e.key for e in end.journal if e.key.endswith("/shift:100")] == after_gate
    assert not run_twice(ran, d.id)
    shown = one_message(h, d.id, "*Succeeded*")
    assert shown.count("Approved by") == 1 and f"Approved by {winner.who}" in shown, shown
    for sent in updates_of(h, d.id):  # never two approvals, never the loser's, on the way
        assert sent.count("Approved by") <= 1, sent
        assert "Approved by" not in sent or f"Approved by {winner.who}" in sent, sent
    return f"{winner.front} first"


def report(what: str, outcomes: Counter[str]) -> None:
    print(f"{what}: " + ", ".join(f"{n} x {o}" for o, n in sorted(outcomes.items())))


# ---------------------------------------------------------------- 1. approve and abort


@pytest.mark.parametrize("rounds", ROUND_COUNTS)
@pytest.mark.parametrize("approver", ["cli", "bot"])
def test_approve_and_abort_at_once_from_the_cli_and_the_bot(
    front: Front, bot: BotHarness, ran: Path, approver: str, rounds: int
) -> None:
    """`mmm approve` (bob) against carol's Abort button, and bob's Approve button against
    `mmm abort` (carol), on a deployment waiting at its gate."""
    rounds_of: list[tuple[Deployment, Side, Side]] = []
    for d in gated(front, bot, rounds):  # every round's `mmm` starts now, to save the waits
        if approver == "cli":
            approve: Side = CliSide(front, "bob", "approve", d.id, ran=ran)
            abort: Side = BotSide(bot, "UCAROL", "aborted by carol", click=(ABORT, d))
        else:
            approve = BotSide(bot, "UBOB", "you approved it", click=(APPROVE, d))
            abort = CliSide(front, "carol", "abort", d.id, ran=ran)
        rounds_of.append((d, approve, abort))
    outcomes: Counter[str] = Counter()
    for d, approve, abort in rounds_of:
        approved, aborted = race(approve, abort)
        outcomes[check_approve_or_abort(bot, d, approved, aborted, ran)] += 1
    report(f"approve ({approver}) vs abort", outcomes)


# ---------------------------------------------------------------- 2. two approvers


@pytest.mark.parametrize(
    ("pair", "rounds"),
    [
        ("cli bob, bot carol", ROUNDS),
        ("cli bob, bot bob (one person)", ROUNDS),
        pytest.param("bot bob, cli carol", ROUNDS, marks=pytest.mark.slow),  # the mirror
        pytest.param("cli bob, bot carol", MANY, marks=pytest.mark.slow),
        pytest.param("cli bob, bot bob (one person)", MANY, marks=pytest.mark.slow),
        pytest.param("bot bob, cli carol", MANY, marks=pytest.mark.slow),
    ],
)
def test_two_approvals_at_once_pass_the_gate_once(
    front: Front, bot: BotHarness, ran: Path, pair: str, rounds: int
) -> None:
    """Two approvals at once on a gate that needs one (mmm's gates need one approval: the
    policy names who may give it, not how many), from two people or from one person on
    two front ends."""
    rounds_of: list[tuple[Deployment, list[Side]]] = []
    for d in gated(front, bot, rounds):
        if pair.startswith("cli bob"):
            user = "UBOB" if "one person" in pair else "UCAROL"
            sides: list[Side] = [
                CliSide(front, "bob", "approve", d.id, ran=ran),
                BotSide(bot, user, "you approved it", click=(APPROVE, d)),
            ]
        else:
            sides = [
                BotSide(bot, "UBOB", "you approved it", click=(APPROVE, d)),
                CliSide(front, "carol", "approve", d.id, ran=ran),
            ]
        rounds_of.append((d, sides))
    outcomes: Counter[str] = Counter()
    for d, sides in rounds_of:
        outcomes[check_one_approval(bot, d, race(*sides), ran)] += 1
    report(f"two approvals ({pair})", outcomes)


# ---------------------------------------------------------------- 5. a Slack retry


@pytest.mark.parametrize("rounds", ROUND_COUNTS)
def test_a_slack_retry_during_a_cli_approve_counts_once(
    front: Front, bot: BotHarness, ran: Path, rounds: int
) -> None:
    """carol's Approve click delivered twice (the retry with X-Slack-Retry-Num) while bob
    runs `mmm approve`: one approval, one answer to carol, and the deployment's one message
    never showing more than that one approval."""
    rounds_of = [
        (
            d,
            CliSide(front, "bob", "approve", d.id, ran=ran),
            BotSide(bot, "UCAROL", "you approved it", click=(APPROVE, d), deliveries=2),
        )
        for d in gated(front, bot, rounds)
    ]
    outcomes: Counter[str] = Counter()
    for d, cli, click in rounds_of:
        saids = race(cli, click)
        outcomes[check_one_approval(bot, d, saids, ran)] += 1
        wait_idle(bot)
        assert sum(len(bot.slack.answers(n)) for n in click.names) == 1  # answered once
        claims = Counter(
            r.action for r in bot.svc.audit_log(d.id) if r.detail.get("slack_user") == "UCAROL"
        )
        # the retry is never a second claim; a click that lost the race to bob's write is
        # audited as refused (one that found the gate already passed is not: it changed
        # nothing and was decided on the record as read)
        won = saids[1].accepted
        assert claims["approve"] == (1 if won else 0), claims
        assert claims["approve_refused"] <= (0 if won else 1), claims
        assert set(claims) <= {"approve", "approve_refused"}, claims
    report("slack retry vs cli approve", outcomes)


def wait_idle(h: BotHarness) -> None:
    """Until the bot has done the work of every request it acked."""
    running: Any = h.bot
    h.slack.wait_for(lambda: running.bot.busy == 0, PATIENCE_S, "the bot's work")


# ---------------------------------------------------------------- 3. two deploys


@pytest.mark.parametrize("rounds", ROUND_COUNTS)
@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
def test_two_deploys_to_one_endpoint_at_once_create_one(
    request: pytest.FixtureRequest,
    slack: FakeSlack,
    ran: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    rounds: int,
) -> None:
    """`mmm deploy` (alice), `/mmm deploy` (bob) and the dashboard's deploy form (carol) to
    one endpoint at once: one deployment, the others refused naming it; one lock, one
    audit record, no trace of the refused ones. The rounds' endpoints are raced all at
    once: a `mmm deploy` loads the model in a child process of its own first, seconds on
    a busy machine, so on DynamoDB the CLI races only in the slow run."""
    front: Front = request.getfixturevalue("front" if backend == "sqlite" else "dynamo_front")
    h = open_bot(front, slack, monkeypatch)
    try:
        carol = front.service("carol")
        rounds_of: dict[str, list[Side]] = {}
        for k in range(rounds):
            endpoint = f"one-{uuid.uuid4().hex[:6]}-{k}"
            rounds_of[endpoint] = [
                BotSide(h, "UBOB", "queued", command=f"deploy churn 2 {endpoint}"),
                DashboardSide(carol, lambda app, e=endpoint: DeployRequest(
                    "churn", "2", e, None, None).deploy(app, dry_run=False)),
            ]  # fmt: skip
            if backend == "sqlite" or rounds > ROUNDS:
                rounds_of[endpoint].insert(0, CliSide(
                    front, "alice", "deploy", "churn", "2", "--endpoint", endpoint, "--detach",
                    ran=ran))  # fmt: skip
        everyone = [side for sides in rounds_of.values() for side in sides]
        said = dict(zip(map(id, everyone), race(*everyone), strict=True))
        outcomes: Counter[str] = Counter()
        for endpoint, sides in rounds_of.items():
            saids = [said[id(side)] for side in sides]
            outcomes[check_one_created(h, endpoint, saids)] += 1
    finally:
        h.close()
    report(f"deploys to one endpoint ({backend})", outcomes)


def check_one_created(h: BotHarness, endpoint: str, saids: list[Said]) -> str:
    store = h.svc.store
    [d] = store.deployments(DeploymentQuery(endpoint=endpoint))
    won = [s for s in saids if s.accepted]
    assert [s.who for s in won] == [d.requested_by], saids
    busy = f"endpoint {endpoint} is busy: {d.id} (started by {d.requested_by}) is still active"
    for loser in saids:
        if loser is not won[0]:
            assert busy in loser.text, loser.text
    deploys = [
        r for r in store.audit_log() if r.action == "deploy" and r.detail["endpoint"] == endpoint
    ]
    assert [r.target for r in deploys] == [d.id]
    assert holders(store, f"endpoint:{endpoint}") == [d.id]
    in_feed = {e.deployment_id for e in feed(store)}
    assert all(store.get(i) is not None for i in in_feed)  # no entry of a refused one
    h.wait_state(d.id, "waiting_approval", timeout_s=PATIENCE_S)
    announced = store.delivery(h.svc.notifications().name, d.id)
    assert announced is not None and announced.get("channel") == CHANNEL
    return f"{won[0].front} first"


def holders(store: Store, lock: str) -> list[str]:
    """Who holds `lock` in the store, as the store keeps it."""
    if isinstance(store, SqliteStore):
        rows = store.db.execute(
            "SELECT deployment_id FROM locks WHERE name = ? ORDER BY deployment_id", [lock]
        ).fetchall()
        return [str(r[0]) for r in rows]
    assert isinstance(store, DynamoStore)
    item = store._get(f"lock#{lock}") or {}
    return sorted(k[2:] for k in item if k.startswith("h:"))


def feed(store: Store) -> list[Any]:
    entries: list[Any] = []
    while True:
        page = store.changes_since(entries[-1].seq if entries else 0)
        if not page:
            return entries
        entries += page


# ---------------------------------------------------------------- 4. retire during a rollout

# Three traffic steps, each watched for a second: long enough for the retirements to meet it
# at every step (a bound of what they may meet, not what the test waits on).
ROLLOUT: dict[str, Any] = {
    "gates": [],
    "strategy": {"kind": "blue-green", "steps": [25, 50, 100], "bake_s": 1},
}


@pytest.mark.parametrize(
    ("when", "rounds"),
    [
        ("during the rollout", ROUNDS),
        pytest.param("at its start", ROUNDS, marks=pytest.mark.slow),
        pytest.param("during the rollout", MANY, marks=pytest.mark.slow),
        pytest.param("at its start", MANY, marks=pytest.mark.slow),
    ],
)
def test_a_rollout_and_retirements_of_its_versions_never_overlap(
    front: Front, bot: BotHarness, ran: Path, tmp_path: Path, when: str, rounds: int
) -> None:
    """m v1 serves on an endpoint; alice's dashboard deploys m v2 (its deploy form's call;
    blue-green in three steps) and the worker advances it. `mmm retire m 1 --force` (root)
    and bob's dashboard, which retires v1 and v2 as its Actions do (the preview, then the
    retirement) over and over until everything has ended, start either once the rollout
    is recorded (so they meet it at whatever step the worker is at) or at the same moment
    as the deploy. Whatever is let in runs alone: a rollout and a retirement of its
    versions are never active together, so never both change the endpoint; every refusal
    says what is in the way."""
    root = front.service("root")
    made = []
    for k in range(rounds):
        model, endpoint = f"swap{k}", f"swap-{uuid.uuid4().hex[:6]}"
        for seed in (0, 1):
            artifact = train_sklearn_regressor(tmp_path / "models", seed=seed)
            golden = write_golden(artifact, Library.SKLEARN, tmp_path / "models")
            root.register(model, artifact, "sklearn", golden, "risk")
        base = root.deploy(
            model, "1", file=deploy_file(tmp_path, {"endpoint": endpoint, "gates": []})
        )
        made.append(
            (model, endpoint, deploy_file(tmp_path, {**ROLLOUT, "endpoint": endpoint}), base)
        )
    outcomes: Counter[str] = Counter()
    for model, endpoint, spec, base in made:
        bot.wait_state(base.id, "succeeded", timeout_s=PATIENCE_S)
        rollout = DashboardSide(
            front.service("alice"),
            lambda app, m=model, f=spec: DeployRequest(m, "2", None, None, f).deploy(app, False),
        )
        forced = CliSide(front, "root", "retire", model, "1", "--force", "--detach", ran=ran)
        # At the start, only v1: v2, not yet deployed, would just be retired before it.
        versions = ("1",) if when == "at its start" else ("1", "2")
        dashboard = RetiringDashboard(front.service("bob"), model, [rollout, forced], versions)
        if when == "at its start":
            saids = race(rollout, forced, dashboard)
        else:
            [started_rollout] = race(rollout)
            assert started_rollout.accepted, started_rollout
            saids = [started_rollout, *race(forced, dashboard)]
        wait_all_ended(bot, model)
        outcomes[check_never_together(bot, model, endpoint, saids, dashboard.told, ran)] += 1
    report(f"rollout vs retirements ({when})", outcomes)


class RetiringDashboard:
    """bob's dashboard retiring versions of m as its Actions do (the preview, then the
    retirement), again at every change of the store (each step of a rollout), until one is
    let in or the other sides have ended and so has every deployment of m."""

    front = "dashboard"

    def __init__(
        self, svc: Service, model: str, others: list[Side], versions: tuple[str, ...]
    ) -> None:
        self.svc, self.model, self.others, self.versions = svc, model, others, versions
        self.told: list[Said] = []
        self._moved = threading.Event()  # never set: a pause between two looks at the feed

    def prepare(self) -> None:
        pass

    def firings(self) -> list[Callable[[], Any]]:
        return [self._run]

    def _over(self) -> bool:
        if not all(side.finished() for side in self.others):
            return False
        active = DeploymentQuery(model=self.model, active_only=True, limit=1)
        return not self.svc.store.deployments(active)

    def _run(self) -> None:
        tried_at = -1
        while True:
            over = self._over()  # looked at before the tries: they come after it
            now = self.svc.store.last_change()
            if now == tried_at and not over:  # nothing has moved since the last tries
                self._moved.wait(0.005)
                continue
            tried_at = now
            for version in self.versions:
                preview = self.svc.preview_retire(self.model, version)
                if preview.refused:  # refused on the preview, before a confirmation
                    self.told.append(Said("dashboard", "bob", False, preview.refused))
                    continue
                try:
                    d = self.svc.retire(self.model, version)
                except BadRequest as exc:
                    self.told.append(Said("dashboard", "bob", False, str(exc)))
                    continue
                self.told.append(Said("dashboard", "bob", True, d.id))
                return  # let in once: enough
            if over:
                return

    def said(self) -> Said:
        let_in = [s for s in self.told if s.accepted]
        return let_in[0] if let_in else self.told[-1]


def wait_all_ended(h: BotHarness, model: str) -> None:
    def ended() -> bool:
        active = DeploymentQuery(model=model, active_only=True)
        return not h.svc.store.deployments(active)

    h.slack.wait_for(ended, PATIENCE_S, f"every deployment of {model} to end")


def check_never_together(
    h: BotHarness, model: str, endpoint: str, saids: list[Said], dashboard: list[Said], ran: Path
) -> str:
    store = h.svc.store
    made = store.deployments(DeploymentQuery(model=model, limit=100))
    ids = {d.id for d in made}
    spans: dict[str, tuple[int, int]] = {}
    for e in feed(store):
        if e.deployment_id in ids:
            first, last = spans.get(e.deployment_id, (e.seq, e.seq))
            spans[e.deployment_id] = (min(first, e.seq), max(last, e.seq))
    rollouts = [d for d in made if d.kind.value == "deploy" and d.version == "2"]
    retirements = [d for d in made if d.kind.value == "retire"]
    for r in rollouts:
        for t in retirements:
            if not set(t.context.versions) & versions_of(r):
                continue  # v1 retired before the rollout, which then replaced nothing
            (a, b), (c, e) = spans[r.id], spans[t.id]  # one ended before the other began
            assert b < c or e < a, (r.id, spans[r.id], t.id, spans[t.id], t.context.versions)
    rollout, forced, _ = saids
    for said in [rollout, forced, *dashboard]:  # every refusal says what is in the way
        if not said.accepted:
            named = [i for i in ids if i in said.text]
            assert named or "live traffic" in said.text, said.text
    assert rollout.accepted == bool(rollouts)
    assert len(retirements) == forced.accepted + sum(s.accepted for s in dashboard)
    for d in made:
        assert not run_twice(ran, d.id)
    config = h.svc.ports.serving.get_endpoint(endpoint, "local")
    serving = {v.name: v.weight for v in config.variants} if config else {}
    if rollouts and rollouts[0].state is DeploymentState.SUCCEEDED:
        assert serving == {f"{model}-v2": 100.0}, serving
    order = sorted(rollouts + retirements, key=lambda d: spans[d.id][0])
    kinds = Counter(_refusal(s.text) for s in [forced, *dashboard] if not s.accepted)
    refused = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    return (" then ".join(_shown(d) for d in order) or "nothing let in") + f" [{refused}]"


def _refusal(text: str) -> str:
    for kind in ("live traffic", "is busy", "being replaced", "being deployed", "being retired"):
        if kind in text:
            return kind
    return text


def versions_of(rollout: Deployment) -> set[str]:
    """The versions a rollout deploys or replaces: its own, and every one that served on its
    endpoint before it changed it (its undo puts those back)."""
    before = served_before(rollout) or {}
    replaced = {v.version for config in before.values() if config for v in config.variants}
    return {rollout.version, *replaced}


def _shown(d: Deployment) -> str:
    what = "rollout" if d.kind.value == "deploy" else f"retire v{'+'.join(d.context.versions)}"
    return f"{what} ({d.state.value})"


# ---------------------------------------------------------------- the dashboard in a race


@pytest.mark.anyio
@pytest.mark.parametrize("rounds", ROUND_COUNTS)
@pytest.mark.parametrize(
    "pair",
    [
        "dashboard bob approves, cli carol aborts",
        "bot bob approves, dashboard carol aborts",
        "dashboard bob approves, bot carol approves",
    ],
)
async def test_the_dashboard_confirms_at_the_moment_the_cli_or_the_bot_acts(
    front: Front, bot: BotHarness, ran: Path, pair: str, rounds: int
) -> None:
    """The dashboard driven by Pilot: its confirmation open, `y` pressed at the moment the
    other front end acts. Its answer is a notification: what it did, or why not."""
    waiting = gated(front, bot, rounds)
    app = MmmApp(front.service("carol" if "dashboard carol" in pair else "bob"))
    outcomes: Counter[str] = Counter()
    async with app.run_test(size=(120, 40)) as pilot:
        for d in waiting:
            if pair.startswith("dashboard bob approves, cli"):
                other: Side = CliSide(front, "carol", "abort", d.id, ran=ran)
                mine = await confirm_in_a_race(pilot, app, d, "approve", other)
                theirs = await anyio.to_thread.run_sync(other.said)
                outcomes[check_approve_or_abort(bot, d, mine, theirs, ran)] += 1
            elif pair.startswith("bot bob approves"):
                other = BotSide(bot, "UBOB", "you approved it", click=(APPROVE, d))
                mine = await confirm_in_a_race(pilot, app, d, "abort", other)
                theirs = await anyio.to_thread.run_sync(other.said)
                outcomes[check_approve_or_abort(bot, d, theirs, mine, ran)] += 1
            else:
                other = BotSide(bot, "UCAROL", "you approved it", click=(APPROVE, d))
                mine = await confirm_in_a_race(pilot, app, d, "approve", other)
                theirs = await anyio.to_thread.run_sync(other.said)
                outcomes[check_one_approval(bot, d, [mine, theirs], ran)] += 1
    report(pair, outcomes)


async def confirm_in_a_race(pilot: Any, app: MmmApp, d: Deployment, verb: str, other: Side) -> Said:
    """Open the dashboard's confirmation of `verb` on `d`, then press `y` at the moment
    `other` acts; what the dashboard then told its user."""
    getattr(app.actions, verb)(d.id)
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, ConfirmScreen) and d.id in screen_text(app),
        f"the confirmation of {verb} {d.id}",
    )
    other.prepare()
    start = threading.Barrier(2)

    def theirs() -> None:
        start.wait()
        together(*other.firings())

    thread = threading.Thread(target=theirs)
    thread.start()
    start.wait()
    await pilot.press("y")
    await anyio.to_thread.run_sync(thread.join)
    await wait_for(pilot, lambda: bool(told(app, d.id)), f"the dashboard's answer on {d.id}")
    (title, text), *after = told(app, d.id)  # then, maybe, how it ended, if it ran it
    assert all(t != "Refused" for t, _ in after), after
    return Said("dashboard", app.actor, title != "Refused", text)


def told(app: MmmApp, deployment_id: str) -> list[tuple[str, str]]:
    return [(title, text) for title, text in notices(app) if deployment_id in text]


# ---------------------------------------------------------------- the dashboard, seen


def screen_text(app: MmmApp) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


def notices(app: MmmApp) -> list[tuple[str, str]]:
    return [(n.title or "", n.message) for n in app._notifications]


def refusals(app: MmmApp) -> list[str]:
    return [message for title, message in notices(app) if title == "Refused"]


async def wait_for(pilot: Any, condition: Any, what: str) -> None:
    deadline = anyio.current_time() + PATIENCE_S
    while not condition():
        if anyio.current_time() > deadline:
            raise AssertionError(f"waited {PATIENCE_S:.0f}s for {what}")
        await pilot.pause(0.05)
