"""The crash matrix on the real adapters: a deployment through S3, SageMaker, CloudWatch and
Application Auto Scaling (this process's moto server), the Comet registry, GitHub and Slack
(local fakes of their REST APIs), carried out by worker processes that are SIGKILLed on the
way; and the end state of every one of those systems, normalised so that two runs of one
deployment compare equal.

A `Lab` (one per test process) holds the stand-ins, one workspace folder, and a fork server
(tests.support.crash_worker) that starts `mmm worker --once` processes in milliseconds. Its
state (the workspace, moto's backends, the fakes) can be saved and put back whole, so that
each case starts exactly where the uninterrupted run was:

- `Lab.template(strategy)`: the version before (`1.0.0`) deployed all at once and the
  candidate (`1.1.0`) recorded, then carried out in this process by mmm's own Worker, the
  state saved before each command of its plan runs for the first time (the state a worker
  saved just before running it) and the looks of each command counted;
- `Lab.reference(template)`: from the recorded candidate, one worker process runs it to the
  end; what every system holds then is the reference;
- `Lab.crash(template, point)`: from the state before the point's command, a worker process
  SIGKILLs itself there (`MMM_CRASH_AT`), a second one runs the deployment to the end, and
  what every system holds is compared with the reference.

What is compared (`Lab.snapshot`): the candidate's record (state, stage, error, every event
but its times, the journal with each undo, approvals, the analysis' verdict and sample
count) and the usage index the worker keeps; S3 (every object with its size and SHA-256;
SageMaker's capture files counted per variant folder, their names being random);
SageMaker (models with their containers, endpoint configs with their variants, shadows and
data capture, endpoints with status, config, weights and instance counts); CloudWatch
(alarms with their metrics and thresholds, dashboards with their bodies); Application Auto
Scaling (targets and policies); GitHub (every commit ever made, dangling ones included,
with its message; branches and their lengths; pull requests with title, body, state and
merge; every file on the base branch); Comet (each version's status and tags, duplicates
kept); Slack (every message of the channel with its text, blocks and thread replies; a reply
repeated right after itself is counted apart, in `Outcome.repeated_replies`: the notifier
delivers at least once).

Normalised: deployment ids (named by role), commit SHAs (numbered in order of appearance),
the fakes' ports, times, dates and durations in text; nothing else.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import yaml
from slack_sdk import WebClient

from core.adapters.aws.session import AwsClients
from core.bootstrap import build_ports, build_store, load_workspace
from core.domain import Command, Deployment, DeploymentState, Library
from core.layout import variant_name
from core.machine import plan_of
from core.notify import Notifications
from core.plan import Action
from core.service import Service
from core.spec import parse_deployment
from core.worker import Worker
from mmm_bot.notifier import SlackNotifier
from tests.support import moto_server
from tests.support.crash_worker import Forkserver
from tests.support.fake_comet import FakeComet
from tests.support.fake_github import CheckPlan, FakeGitHub
from tests.support.fake_slack import FakeSlack
from tests.support.models import sample_instances, train_sklearn_regressor, write_golden
from tests.support.moto_sagemaker import LIFECYCLE

MMM = Path(sys.executable).parent / "mmm"
COMET_KEY = "comet-key-c7a1e0"
GITHUB_TOKEN = "ghp_crash93b2d1"
SLACK_TOKEN = "xoxb-crash-5e1f"
SLACK_SECRET = "crash-signing-secret"
CHANNEL = "CDEPLOYS"
WORKSPACE = "risk-team"
REPO = "acme/backend"
MODEL = "churn"
ENDPOINT = "churn-scorer"
BASE, CANDIDATE = "1.0.0", "1.1.0"
LEASE_S = 0.5  # how long a killed worker holds the deployment (and the feed's cursor)
REPLAY_ROWS = 20
AUTOSCALING = {"min": 1, "max": 2, "target_invocations_per_instance": 100}
# DescribeEndpoint calls that see an endpoint change still under way (Creating, Updating): one,
# so each SageMaker step looks twice, "not yet" then done.
SAGEMAKER_LOOKS = 1

# The candidate's deployment file per strategy (the version before it deploys all at once
# with the same instance and autoscaling). Blue-green bakes half a second per step: a kill in a
# bake is a kill while it watches the alarms. Shadow replays 20 inputs (the same model: the
# analysis passes) and promotes all at once.
STRATEGIES: dict[str, dict[str, Any]] = {
    "all-at-once": {"strategy": {"kind": "all-at-once"}},
    "blue-green": {"strategy": {"kind": "blue-green", "steps": [50, 100], "bake_s": 0.5}},
    "shadow": {
        "strategy": {
            "kind": "shadow",
            "min_samples": REPLAY_ROWS,
            "auto_approve": True,
            "then": "all-at-once",
        },
        # tolerances at which 20 identical pairs pass (the error rate's bound needs the most)
        "analysis": {"min_pairs": 20, "max_error_rate_increase": 0.25, "max_quantile_shift": 0.3},
    },
}

# Commands whose number of looks depends on the clock (a bake looks until its time is up):
# their last look cannot be told apart from the others by a count.
TIMED = frozenset({Action.BAKE})


# ---------------------------------------------------------------- injection points


@dataclass(frozen=True)
class Point:
    """Where a worker is SIGKILLed: `MMM_CRASH_AT=<step>:<where>[@nth]`."""

    step: str
    action: Action
    where: str  # after_run: the command ran, its result is not logged | after_log: logged,
    #             the state that consumes it is not saved
    nth: int = 1  # the look of the command (a long command looks several times)
    kind: str = ""  # "inside": after a look that answered "not yet"; "done": after the last

    @property
    def crash_at(self) -> str:
        return f"{self.step}:{self.where}" + (f"@{self.nth}" if self.nth > 1 else "")

    @property
    def name(self) -> str:
        return f"{self.step}:{self.kind or self.where}"


def points_of(steps: list[tuple[str, Action]], looks: dict[str, int]) -> list[Point]:
    """Every boundary of every command of the plan: right after it ran (before its result is
    logged) and right after its result is logged. A command that looked more than once in
    the uninterrupted run (it asked something that takes a while: an endpoint update, the
    pull request's checks, a bake) is also killed inside: after its first look. Its last
    look is killed at by count, unless the count depends on the clock (TIMED)."""
    points = []
    for step, action in steps:
        n = looks.get(step, 1)
        if n > 1:
            points.append(Point(step, action, "after_run", 1, "inside"))
            if action not in TIMED:
                points.append(Point(step, action, "after_run", n, "done"))
        else:
            points.append(Point(step, action, "after_run"))
        points.append(Point(step, action, "after_log"))
    return points


def spec_of(strategy: str, replay: Path) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "endpoint": ENDPOINT,
        "regions": [moto_server.REGION],
        "instance": {"type": "ml.m5.large", "count": 1},
        "autoscaling": AUTOSCALING,
        **copy.deepcopy(STRATEGIES[strategy]),
    }
    if strategy == "shadow":
        spec["strategy"]["traffic"] = {"replay": str(replay)}
    return spec


def plan_steps(strategy: str) -> list[tuple[str, Action]]:
    """The candidate's plan as the machine walks it (core.plan through core.machine.plan_of),
    gates left out: a new step is a new injection point with no change here."""
    spec = parse_deployment(spec_of(strategy, Path("replay.jsonl")), "crash matrix")
    draft = Deployment(
        id="dep-000000-000000",
        model=MODEL,
        version=CANDIDATE,
        endpoint=ENDPOINT,
        regions=list(spec.regions),
        spec=spec,
        library=Library.SKLEARN,
        requested_by="alice",
        created_at="2000-01-01T00:00:00+00:00",
        updated_at="2000-01-01T00:00:00+00:00",
    )
    return [(s.name, s.action) for s in plan_of(draft) if s.action is not Action.GATE]


# ---------------------------------------------------------------- saved states


_MOTO_SERVICES = ("s3", "sagemaker", "cloudwatch", "applicationautoscaling")
# Which account holds each bucket: kept by moto beside the S3 backends, not in them.
_BUCKET_ACCOUNTS = "bucket_accounts"


def _moto_backends() -> Iterator[tuple[tuple[str, str, str], Any]]:
    from moto.backends import get_backend

    for service in _MOTO_SERVICES:
        for account, regional in get_backend(service).items():  # type: ignore[call-overload]
            for region, backend in regional.items():
                yield (service, account, region), backend


def _moto_save() -> dict[tuple[str, str, str], dict[str, Any]]:
    from moto.backends import get_backend
    from moto.core.base_backend import BaseBackend

    accounts = getattr(get_backend("s3"), _BUCKET_ACCOUNTS)
    saved = {("s3", _BUCKET_ACCOUNTS, ""): {"map": copy.deepcopy(accounts)}}
    for key, backend in _moto_backends():
        # another service's backend (autoscaling's ECS) is not this one's state: kept as is
        saved[key] = {
            k: v if isinstance(v, BaseBackend) else copy.deepcopy(v)
            for k, v in vars(backend).items()
        }
    return saved


def _moto_restore(saved: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    from moto.backends import get_backend
    from moto.core.base_backend import BaseBackend

    for key, backend in list(_moto_backends()):
        if key not in saved:
            backend.reset()
    accounts = getattr(get_backend("s3"), _BUCKET_ACCOUNTS)
    accounts.clear()
    accounts.update(copy.deepcopy(saved[("s3", _BUCKET_ACCOUNTS, "")]["map"]))
    for (service, account, region), state in saved.items():
        if account == _BUCKET_ACCOUNTS:
            continue
        backend = get_backend(service)[account][region]  # type: ignore[call-overload]
        fresh = {k: v if isinstance(v, BaseBackend) else copy.deepcopy(v) for k, v in state.items()}
        vars(backend).clear()
        vars(backend).update(fresh)


_GITHUB_STATE = ("blobs", "trees", "commits", "refs", "pulls", "statuses", "runs")
_SLACK_STATE = ("messages", "_clock")


@dataclass
class Saved:
    """Everything a deployment's run may change, as it was at one moment."""

    folder: Path  # the workspace's files, its SQLite databases as consistent copies
    moto: dict[tuple[str, str, str], dict[str, Any]]
    lifecycle: dict[str, Any]
    github: dict[str, Any]
    comet: dict[Any, Any]
    slack: dict[str, Any]


def _copy_workspace(home: Path, to: Path) -> None:
    """`home` into `to`: files as they are, each SQLite database through SQLite's backup (a
    consistent copy, whatever connections are open), never its -wal or -shm files; nor the
    scratch folders of the processes that ran (`tmp/`: this one's is still alive)."""

    def ignored(folder: str, names: list[str]) -> set[str]:
        scratch = {"tmp"} if Path(folder) == home else set()
        return scratch | {n for n in names if n.endswith((".db", ".db-wal", ".db-shm"))}

    shutil.copytree(home, to, ignore=ignored)
    for db in home.rglob("*.db"):
        src = sqlite3.connect(db)
        dst = sqlite3.connect(to / db.relative_to(home))
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()


def _no_delay(server: Any) -> None:
    """Answer without Nagle's algorithm: a fake (or moto's werkzeug, for None) writes an
    answer's headers and body apart, and the client's delayed ACK would hold each answer on
    a kept-alive connection for 40 ms."""
    if server is None:
        from werkzeug.serving import WSGIRequestHandler

        WSGIRequestHandler.disable_nagle_algorithm = True
    else:
        server.RequestHandlerClass.disable_nagle_algorithm = True


# ---------------------------------------------------------------- the model


def model_files(folder: Path) -> tuple[dict[str, bytes], Path]:
    """A real scikit-learn regressor and its golden data, as a Comet version's assets (both
    versions are this model: the candidate predicts as the version before it does)."""
    artifact = train_sklearn_regressor(folder, seed=0)
    golden = write_golden(artifact, Library.SKLEARN, folder)
    return {"model.joblib": artifact.read_bytes(), "golden.jsonl": golden.read_bytes()}, artifact


def responder(artifact: Path) -> Callable[[bytes], bytes]:
    """A SageMaker container serving `artifact`, as the moto runtime calls it."""
    model = joblib.load(artifact)
    if hasattr(model, "feature_names_in_"):  # rows come unnamed: the same answers, unwarned
        del model.feature_names_in_

    def respond(body: bytes) -> bytes:
        rows = json.loads(body)["instances"]
        return json.dumps({"predictions": [float(y) for y in model.predict(rows)]}).encode()

    return respond


# ---------------------------------------------------------------- one strategy's run


@dataclass
class Template:
    """The uninterrupted run of one strategy, carried out in this process."""

    strategy: str
    ids: dict[str, str]  # role -> deployment id
    queued: Saved  # the candidate recorded, nothing of it done
    before: dict[str, Saved]  # step -> the state just before its command first ran
    looks: dict[str, int]  # step -> how many times its command ran
    steps: list[tuple[str, Action]]
    seconds: float = 0.0

    @property
    def points(self) -> list[Point]:
        return points_of(self.steps, self.looks)


@dataclass
class Outcome:
    """One run's end: what every system holds, and how the worker processes went."""

    snapshot: dict[str, Any]
    runs: list[dict[str, Any]]
    seconds: float
    state: str
    # thread replies posted again right after themselves: the notifier delivers at least
    # once, so a notifier killed between a reply and its cursor posts that reply again
    repeated_replies: int = 0


class SavingWorker(Worker):
    """mmm's Worker, which saves the lab's whole state before a command first runs and counts
    the looks of each command."""

    def __init__(self, lab: Lab, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lab = lab
        self.before: dict[str, Saved] = {}
        self.looks: dict[str, int] = {}

    def _execute(self, d: Deployment, cmd: Command) -> Any:
        if cmd.step not in self.before and not cmd.key.endswith("/undo"):
            self.lab.drain()
            self.before[cmd.step] = self.lab.save(f"{d.id}-{len(self.before):02d}")
        if self.store.command_result(cmd.key) is None:
            self.looks[cmd.step] = self.looks.get(cmd.step, 0) + 1
        return super()._execute(d, cmd)


class Lab:
    """The stand-ins of one test process, one workspace, and a fork server (see the module's
    docstring). `root` is a folder of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "ws"
        self.saves = root / "saves"
        self.logs = root / "logs"
        for folder in (self.saves, self.logs):
            folder.mkdir(parents=True)
        files, artifact = model_files(root / "model")
        self.replay = root / "replay.jsonl"
        self.replay.write_text(
            "".join(json.dumps(r) + "\n" for r in sample_instances(10, REPLAY_ROWS))
        )
        self.url = moto_server.server_url()
        self.aws = moto_server.Aws(self.url, AwsClients(moto_server.REGION, self.url))
        self.comet = FakeComet(api_key=COMET_KEY).start()
        self.gh = FakeGitHub(REPO, token=GITHUB_TOKEN).start()
        self.gh.checks = CheckPlan(name="mmm-golden", pending_polls=1)
        self.slack = FakeSlack(token=SLACK_TOKEN).start()
        for fake in (self.comet, self.gh, self.slack):
            _no_delay(fake._server)
        _no_delay(None)
        self.comet.add_version(WORKSPACE, MODEL, BASE, files)
        self.comet.add_version(WORKSPACE, MODEL, CANDIDATE, files)
        serve = responder(artifact)
        self.responders = {variant_name(MODEL, BASE): serve, variant_name(MODEL, CANDIDATE): serve}
        self.ids: dict[str, str] = {}
        moto_server.reset()
        self._prepare()
        self.empty = self.save("empty")
        self.server = Forkserver(self.env())
        self._runs = 0

    def close(self) -> None:
        self.server.close()
        for fake in (self.comet, self.gh, self.slack):
            fake.stop()
        moto_server.reset()  # nothing of this lab left for the tests after it (nor its looks)

    # ------------------------------------------------------------ the environment

    def env(self, crash_at: str | None = None) -> dict[str, str]:
        """What a worker process sees: dummy AWS credentials, the fakes' addresses and
        tokens (as `mmm` reads them), the workspace."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MMM_", "SLACK_"))}
        env.update(moto_server.DUMMY_ENV)
        env.update(
            MMM_HOME=str(self.home),
            MMM_USER="worker",
            COMET_URL_OVERRIDE=self.comet.url_override,
            COMET_API_KEY=COMET_KEY,
            COMET_ERROR_TRACKING_ENABLE="false",
            COMET_DISABLE_AUTO_LOGGING="1",
            COMET_HTTP_SESSION_RETRY_TOTAL="0",
            COMET_TIMEOUT_API="30",
            GITHUB_TOKEN=GITHUB_TOKEN,
            SLACK_BOT_TOKEN=SLACK_TOKEN,
            SLACK_SIGNING_SECRET=SLACK_SECRET,
            SLACK_API_URL=self.slack.api_url,
        )
        if crash_at:
            env["MMM_CRASH_AT"] = crash_at
        return env

    def _prepare(self) -> None:
        """The workspace, with nothing deployed (its settings name the stand-ins)."""
        if self.home.exists():
            shutil.rmtree(self.home)
        self.home.mkdir()
        settings = {
            "backends": {
                "store": "sqlite",
                "registry": "comet",
                "codehost": "github",
                "artifacts": "s3",
                "serving": "sagemaker",
                "monitor": "cloudwatch",
            },
            "aws": {
                "region": moto_server.REGION,
                "endpoint_url": self.url,
                "role_arn": moto_server.ROLE_ARN,
                "images": moto_server.IMAGES,
            },
            "comet": {"workspace": WORKSPACE},
            "github": {"repo": REPO, "base_url": self.gh.api_url, "checks_timeout_s": 600},
            "slack": {"channel": CHANNEL, "users": {"U0ALICE": "alice", "U0BOB": "bob"}},
            "defaults": {"regions": [moto_server.REGION]},
            "worker": {"lease_s": LEASE_S, "poll_s": 0.1, "backoff_s": 0.1},
        }
        (self.home / "mmm.yaml").write_text(yaml.safe_dump(settings))

    # ------------------------------------------------------------ saving, putting back

    def save(self, label: str) -> Saved:
        folder = self.saves / label
        _copy_workspace(self.home, folder)
        with LIFECYCLE.lock:  # SageMaker changes under way, and failures to come
            lifecycle = {
                "changes": copy.deepcopy(LIFECYCLE.changes),
                "failures": list(LIFECYCLE.failures),
            }
        with self.gh._lock:
            github = {k: copy.deepcopy(getattr(self.gh, k)) for k in _GITHUB_STATE}
        with self.comet._lock:
            comet = copy.deepcopy(self.comet.models)
        with self.slack._lock:
            slack = {k: copy.deepcopy(getattr(self.slack, k)) for k in _SLACK_STATE}
        return Saved(folder, _moto_save(), lifecycle, github, comet, slack)

    def restore(self, saved: Saved) -> None:
        if self.home.exists():
            shutil.rmtree(self.home)
        shutil.copytree(saved.folder, self.home)
        _moto_restore(saved.moto)
        with LIFECYCLE.lock:
            LIFECYCLE.reset()
            LIFECYCLE.looks = SAGEMAKER_LOOKS
            LIFECYCLE.changes.update(copy.deepcopy(saved.lifecycle["changes"]))
            LIFECYCLE.failures.extend(saved.lifecycle["failures"])
            LIFECYCLE.responders.update(self.responders)
        with self.gh._lock:
            for k in _GITHUB_STATE:
                setattr(self.gh, k, copy.deepcopy(saved.github[k]))
            self.gh.requests.clear()
        with self.comet._lock:
            self.comet.models = copy.deepcopy(saved.comet)
            self.comet.requests.clear()
        with self.slack._lock:
            for k in _SLACK_STATE:
                setattr(self.slack, k, copy.deepcopy(saved.slack[k]))
            self.slack.calls.clear()

    # ------------------------------------------------------------ in this process

    def service(self, actor: str = "alice") -> Service:
        """The service of the workspace, as `mmm` builds it with Slack configured."""
        ws = load_workspace(self.home)
        svc = Service(ws, build_store(ws), build_ports(ws), actor)
        svc.ports.notifier = SlackNotifier(
            WebClient(token=SLACK_TOKEN, base_url=self.slack.api_url),
            ws.settings.slack,
            approvers=svc.approvers_for,
        )
        return svc

    def drain(self, timeout_s: float = 60) -> None:
        """Deliver what is left of the change feed to Slack, as the notifier of a worker
        does (a killed worker's notifier may have left some; its lease on the cursor runs
        out first)."""
        svc = self.service()
        try:
            notifications = Notifications(svc.store, svc.ports.notifier, lease_s=LEASE_S)
            deadline = time.monotonic() + timeout_s
            while svc.store.cursor(notifications.name) < svc.store.last_change():
                if not notifications.run_once():
                    assert time.monotonic() < deadline, "the change feed was not delivered"
                    time.sleep(0.05)
        finally:
            svc.store.close()

    def deployment(self, role: str = "candidate") -> Deployment:
        store = build_store(load_workspace(self.home))
        try:
            d = store.get(self.ids[role])
        finally:
            store.close()
        assert d is not None
        return d

    def abort(self, reason: str = "not today") -> None:
        svc = self.service("bob")
        try:
            svc.abort(self.ids["candidate"], reason)
        finally:
            svc.store.close()

    # ------------------------------------------------------------ worker processes

    def worker(self, crash_at: str | None = None, timeout_s: float = 240) -> dict[str, Any]:
        """`mmm worker --once` in a process of its own, until every deployment has ended or
        waits for a person, or until it kills itself at `crash_at`."""
        self._runs += 1
        log = self.logs / f"{self._runs:04d}.log"
        started = time.monotonic()
        here = resource.getrusage(resource.RUSAGE_SELF)
        code, cpu_s = self.server.run(
            ["worker", "--once"], self.env(crash_at), self.home, log, timeout_s
        )
        now = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "crash_at": crash_at,
            "code": code,
            "s": round(time.monotonic() - started, 2),
            "cpu_s": cpu_s,
            "stand_ins_cpu_s": round(
                now.ru_utime + now.ru_stime - here.ru_utime - here.ru_stime, 2
            ),
            "log": log.read_text()[-4000:] if log.exists() else "",
        }

    def mmm_worker(self, timeout_s: float = 300) -> dict[str, Any]:
        """The installed `mmm worker --once` command itself (a new interpreter, PyGithub's
        pauses on), to the same effect as `worker()`."""
        self._runs += 1
        started = time.monotonic()
        proc = subprocess.run(
            [str(MMM), "worker", "--once"],
            env=self.env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        return {
            "crash_at": None,
            "code": proc.returncode,
            "s": round(time.monotonic() - started, 2),
            "cpu_s": 0.0,  # counted with this process's children, not here
            "stand_ins_cpu_s": 0.0,
            "log": (proc.stdout + proc.stderr)[-4000:],
        }

    # ------------------------------------------------------------ one strategy

    def template(self, strategy: str) -> Template:
        started = time.monotonic()
        self.restore(self.empty)
        svc = self.service()
        try:
            spec = self.root / f"{strategy}.yaml"
            spec.write_text(yaml.safe_dump(spec_of(strategy, self.replay)))
            base_spec = self.root / "base.yaml"
            base_spec.write_text(yaml.safe_dump(spec_of("all-at-once", self.replay)))
            base = svc.run(svc.deploy(MODEL, BASE, ENDPOINT, file=base_spec))
            assert base.state is DeploymentState.SUCCEEDED, base.error
            candidate = svc.deploy(MODEL, CANDIDATE, ENDPOINT, file=spec)
            self.ids = {"base": base.id, "candidate": candidate.id}
        finally:
            svc.store.close()
        self.drain()
        queued = self.save(f"{strategy}-queued")
        svc = self.service("worker")
        try:
            worker = SavingWorker(self, svc.ws, svc.store, svc.ports)
            done = worker.drive(self.ids["candidate"])
            assert done.state is DeploymentState.SUCCEEDED, done.error
        finally:
            svc.store.close()
        return Template(
            strategy=strategy,
            ids=dict(self.ids),
            queued=queued,
            before=worker.before,
            looks=worker.looks,
            steps=plan_steps(strategy),
            seconds=time.monotonic() - started,
        )

    def finish(self, runs: list[dict[str, Any]], started: float) -> Outcome:
        last = runs[-1]
        assert last["code"] == 0, last
        self.drain()
        left = sorted(str(p.relative_to(self.home)) for p in (self.home / "tmp").rglob("*"))
        assert left == [], f"scratch left behind: {left}"
        return Outcome(
            snapshot=self.snapshot(),
            runs=runs,
            seconds=time.monotonic() - started,
            state=self.deployment().state.value,
            repeated_replies=sum(
                len(replies) - len(_collapsed(replies))
                for replies in (
                    [r.text for r in self.slack.replies(m.ts)]
                    for m in self.slack.top_level(CHANNEL)
                )
            ),
        )

    def reference(self, t: Template, command: bool = False) -> Outcome:
        """The candidate carried out by one worker process, from its recording to its end
        (`command`: by the installed `mmm worker --once` rather than a forked one)."""
        started = time.monotonic()
        self.ids = dict(t.ids)
        self.restore(t.queued)
        return self.finish([self.mmm_worker() if command else self.worker()], started)

    def crash(self, t: Template, point: Point, then: Callable[[], None] | None = None) -> Outcome:
        """From the state just before `point`'s command, a worker SIGKILLed at `point`, then
        (after `then`, if given) one that runs the deployment to its end."""
        started = time.monotonic()
        self.ids = dict(t.ids)
        self.restore(t.before[point.step])
        killed = self.worker(point.crash_at)
        assert killed["code"] == -signal.SIGKILL, f"not killed at {point.crash_at}: {killed}"
        if then is not None:
            then()
        return self.finish([killed, self.worker()], started)

    # ------------------------------------------------------------ what everything holds

    def snapshot(self) -> dict[str, Any]:
        norm = Normaliser(self.ids)
        snap: dict[str, Any] = norm.data(
            {
                "deployment": self._deployment_facts(),
                "s3": self._s3(),
                "sagemaker": self._sagemaker(),
                "cloudwatch": self._cloudwatch(),
                "autoscaling": self._autoscaling(),
                "github": self._github(),
                "comet": self._comet(),
                "slack": self._slack(),
            }
        )
        return snap

    def _deployment_facts(self) -> dict[str, Any]:
        d = self.deployment()
        events = []
        for e in d.events:
            raw = e.model_dump(mode="json")
            events.append({k: v for k, v in raw.items() if k not in ("at", "until")})
        analysis = d.analysis or {}
        store = build_store(load_workspace(self.home))
        try:
            usage = [s.model_dump(mode="json") for s in store.usage_index(MODEL)]
        finally:
            store.close()
        return {
            "state": d.state.value,
            "stage": d.stage.value,
            "end_reason": d.end_reason.value if d.end_reason else None,
            "error": d.error,
            "events": events,
            "journal": [
                {
                    "key": j.key,
                    "action": j.action,
                    "undo": j.undo.model_dump(mode="json") if j.undo else None,
                    "undone": j.undone,
                }
                for j in d.journal
            ],
            "approvals": [a.by for a in d.approvals],
            "analysis": {k: analysis.get(k) for k in ("verdict", "samples")} if analysis else None,
            "charts": len(analysis.get("report") or []),
            "usage_index": sorted(usage, key=lambda s: json.dumps(s, sort_keys=True)),
        }

    def _s3(self) -> dict[str, Any]:
        s3: Any = self.aws.client("s3")
        objects: dict[str, Any] = {}
        captures: dict[str, int] = {}
        for bucket in sorted(b["Name"] for b in s3.list_buckets().get("Buckets", [])):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if "-captures-" in bucket:  # SageMaker's files: <endpoint>/<variant>/...
                        folder = f"{bucket}/" + "/".join(key.split("/")[:2])
                        captures[folder] = captures.get(folder, 0) + 1
                        continue
                    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                    digest = hashlib.sha256(body).hexdigest()[:16]
                    if key.endswith(".png"):  # a chart: drawn from the run's own pairs
                        digest = "chart"
                    objects[f"{bucket}/{key}"] = {"size": len(body), "sha256": digest}
        return {"objects": objects, "captures": captures}

    def _sagemaker(self) -> dict[str, Any]:
        sm: Any = self.aws.client("sagemaker")
        models = {}
        for m in sm.list_models()["Models"]:
            described = sm.describe_model(ModelName=m["ModelName"])
            models[m["ModelName"]] = described.get("PrimaryContainer")
        configs = {}
        for c in sm.list_endpoint_configs()["EndpointConfigs"]:
            described = sm.describe_endpoint_config(EndpointConfigName=c["EndpointConfigName"])
            configs[c["EndpointConfigName"]] = {
                k: described.get(k)
                for k in ("ProductionVariants", "ShadowProductionVariants", "DataCaptureConfig")
            }
        endpoints = {}
        for e in sm.list_endpoints()["Endpoints"]:
            described = sm.describe_endpoint(EndpointName=e["EndpointName"])
            endpoints[e["EndpointName"]] = {
                "status": described["EndpointStatus"],
                "config": described["EndpointConfigName"],
                "variants": [
                    {
                        k: v.get(k)
                        for k in (
                            "VariantName",
                            "CurrentWeight",
                            "DesiredWeight",
                            "CurrentInstanceCount",
                            "DesiredInstanceCount",
                        )
                    }
                    for v in described.get("ProductionVariants", [])
                ],
            }
        return {"models": models, "configs": configs, "endpoints": endpoints}

    def _cloudwatch(self) -> dict[str, Any]:
        cw: Any = self.aws.client("cloudwatch")
        fields = (
            "MetricName",
            "Namespace",
            "Threshold",
            "ComparisonOperator",
            "EvaluationPeriods",
            "Dimensions",
            "Metrics",
            "TreatMissingData",
            "StateValue",
        )
        alarms = {
            a["AlarmName"]: {k: a.get(k) for k in fields}
            for a in cw.describe_alarms()["MetricAlarms"]
        }
        dashboards = {
            e["DashboardName"]: json.loads(
                cw.get_dashboard(DashboardName=e["DashboardName"])["DashboardBody"]
            )
            for e in cw.list_dashboards()["DashboardEntries"]
        }
        return {"alarms": alarms, "dashboards": dashboards}

    def _autoscaling(self) -> dict[str, Any]:
        aas: Any = self.aws.client("application-autoscaling")
        target_fields = ("ResourceId", "ScalableDimension", "MinCapacity", "MaxCapacity")
        policy_fields = (
            "PolicyName",
            "ResourceId",
            "ScalableDimension",
            "PolicyType",
            "TargetTrackingScalingPolicyConfiguration",
        )
        targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
        policies = aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]

        def key(x: dict[str, Any]) -> str:
            return json.dumps(x, sort_keys=True, default=str)

        return {
            "targets": sorted(({k: t.get(k) for k in target_fields} for t in targets), key=key),
            "policies": sorted(({k: p.get(k) for k in policy_fields} for p in policies), key=key),
        }

    def _github(self) -> dict[str, Any]:
        gh = self.gh
        with gh._lock:
            commits = sorted(gh.commits.values(), key=lambda c: (c.date, c.message))
            branches = {}
            for branch, sha in gh.refs.items():
                length, at = 0, sha
                while at:
                    length += 1
                    at = gh.commits[at].parents[0] if gh.commits[at].parents else ""
                branches[branch] = length
            pulls = [
                {
                    "title": p.title,
                    "body": p.body,
                    "head": p.head,
                    "base": p.base,
                    "state": p.state,
                    "merged": p.merged,
                }
                for p in sorted(gh.pulls.values(), key=lambda p: p.number)
            ]
        return {
            "commits": sorted(c.message for c in commits),
            "branches": branches,
            "pulls": pulls,
            "main": gh.files(),
        }

    def _comet(self) -> dict[str, Any]:
        out = {}
        for version in (BASE, CANDIDATE):
            v = self.comet.version(WORKSPACE, MODEL, version)
            out[version] = {"status": v.status, "tags": sorted(v.tags)}
        return out

    def _slack(self) -> list[dict[str, Any]]:
        messages = []
        for m in self.slack.top_level(CHANNEL):
            payload = (m.metadata or {}).get("event_payload") or {}
            messages.append(
                {
                    "deployment": payload.get("deployment_id"),
                    "text": m.text,
                    "blocks": m.blocks,
                    # (a reply repeated right after itself counts apart: see Outcome)
                    "replies": _collapsed([r.text for r in self.slack.replies(m.ts)]),
                }
            )
        return messages


def _collapsed(texts: list[str]) -> list[str]:
    """`texts` without a text that repeats the one just before it."""
    return [t for i, t in enumerate(texts) if i == 0 or t != texts[i - 1]]


# ---------------------------------------------------------------- normalising


_DEP_ID = re.compile(r"\b(?:dep|ret)-\d{6}-[0-9a-f]{6}\b")
_SHA = re.compile(r"\b[0-9a-f]{40}\b")
_PORT = re.compile(r"127\.0\.0\.1:\d+")
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_CLOCK = re.compile(r"\b\d{2}:\d{2}(?::\d{2})?\b")
_DURATION = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s|min)\b")


class Normaliser:
    """Replaces what legitimately differs between two runs of one deployment."""

    def __init__(self, ids: dict[str, str]) -> None:
        self.ids = {v: f"<{k}>" for k, v in ids.items()}
        self.shas: dict[str, str] = {}

    def text(self, s: str) -> str:
        s = _DEP_ID.sub(lambda m: self.ids.get(m.group(0), "<other>"), s)
        s = _SHA.sub(lambda m: self.shas.setdefault(m.group(0), f"<sha{len(self.shas)}>"), s)
        s = _PORT.sub("<host>", s)
        s = _ISO_TIME.sub("<time>", s)
        s = _CLOCK.sub("<clock>", s)
        return _DURATION.sub("<duration>", s)

    def data(self, x: Any) -> Any:
        if isinstance(x, str):
            return self.text(x)
        if isinstance(x, dict):
            return {self.text(str(k)): self.data(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [self.data(v) for v in x]
        return x


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where `b` differs from `a`, one line each (at most a few dozen)."""
    out: list[str] = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append(f"{path}/{k}: only in the run: {_short(b[k])}")
            elif k not in b:
                out.append(f"{path}/{k}: missing from the run: {_short(a[k])}")
            else:
                out += differences(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += differences(x, y, f"{path}[{i}]")
    elif isinstance(a, list) and isinstance(b, list):  # items missing or added: say which
        before = [_short(x) for x in a]
        after = [_short(x) for x in b]
        for line in difflib.unified_diff(before, after, lineterm="", n=0):
            if line.startswith(("+", "-")) and not line.startswith(("+++", "---")):
                sign = "only in the run" if line[0] == "+" else "missing from the run"
                out.append(f"{path}: {sign}: {line[1:]}")
    elif a != b:
        out.append(f"{path}: {_short(a)} -> {_short(b)}")
    return out[:40]


def _short(x: Any) -> str:
    text = json.dumps(x, default=str, sort_keys=True)
    return text if len(text) <= 300 else text[:300] + "..."


@dataclass
class Result:
    """One case of the matrix."""

    strategy: str
    case: str
    crash_at: str
    same: bool
    seconds: float
    differences: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    known: bool = False  # its differences are a known defect's (and exactly those)
    repeated_replies: int = 0


def cpu_seconds() -> float:
    """CPU time of this process so far (moto's server and the fakes run in it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
