"""The three front ends on one workspace at the same moment, for tests of what they do when
people act at once: the real `mmm` command in processes of their own, started together.

The workspace's endpoints, alarms and repository are the file-backed recording fakes of
tests/support (`fake_ports`), so the CLI's processes, the bot and the dashboard in the test's
process, and their workers all see the same systems; the store is the one mmm.yaml names
(the SQLite file, or DynamoDB).

    python -m tests.support.front_ends HOME ARG...
        `mmm ARG...` on HOME (MMM_USER says who acts), with its ports the recording fakes.
        It imports what the command needs, writes READY on stderr, and waits for a line on
        stdin before it runs: a test starts several and lets them go at one moment.

With MMM_TEST_EXECUTIONS=FILE in the environment, every command a worker runs in that
process (inline, as `mmm approve` does without a live worker) is appended to FILE as a
JSON line {"key", "pid"} before it runs; `log_executions` does the same in the test's
process. A command fed back from the command log is not run, so not logged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
READY = "front-end-ready"
EXECUTIONS_ENV = "MMM_TEST_EXECUTIONS"
PATIENCE_S = 120.0  # the longest anything is waited for (a bound, never a measure)

# Commands a worker runs again while it waits on the world (a bake, the checks, a
# collection): each look is one execution. Every other command changes something and must
# run once.
LOOKS = frozenset({"run_checks", "bake", "collect", "analyze", "check_golden"})


# ---------------------------------------------------------------- commands run, once each


@contextmanager
def log_executions(path: Path) -> Iterator[None]:
    """While inside, every command any worker of this process runs is appended to `path`."""
    from core.steps import Executor

    original = Executor.run

    def logged(self: Any, d: Any, cmd: Any) -> Any:
        with open(path, "a") as f:  # one write per line: lines never interleave
            f.write(json.dumps({"key": cmd.key, "action": cmd.action, "pid": os.getpid()}) + "\n")
        return original(self, d, cmd)

    Executor.run = logged  # type: ignore[method-assign]
    try:
        yield
    finally:
        Executor.run = original  # type: ignore[method-assign]


def executions(path: Path, deployment_id: str | None = None) -> list[dict[str, Any]]:
    """The commands run, in order (of one deployment, when given)."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if deployment_id is None:
        return rows
    return [r for r in rows if r["key"].startswith(deployment_id + "/")]


def run_twice(path: Path, deployment_id: str) -> dict[str, int]:
    """Commands of `deployment_id` that change something and ran more than once (with how
    often): empty when every effect happened at most once."""
    counts = Counter(r["key"] for r in executions(path, deployment_id) if r["action"] not in LOOKS)
    return {key: n for key, n in counts.items() if n > 1}


# ---------------------------------------------------------------- `mmm` in a process


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one error line `mmm` printed (empty when none)."""
        lines = [line for line in self.err.splitlines() if line.startswith("mmm: error: ")]
        return lines[-1].removeprefix("mmm: error: ") if lines else ""


class Cli:
    """`mmm ARGS` as `user` on `home`, started now and held until `go()`."""

    def __init__(
        self,
        home: Path,
        user: str,
        *args: str,
        executions: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = args
        environment = dict(os.environ if env is None else env)
        environment.update(
            MMM_HOME=str(home),
            MMM_USER=user,
            PYTHONPATH=str(ROOT),
            COMET_ERROR_TRACKING_ENABLE="false",
            COMET_DISABLE_AUTO_LOGGING="1",
        )
        for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
            environment.pop(name, None)  # the bot's notifier is the test's, not the CLI's
        if executions is not None:
            environment[EXECUTIONS_ENV] = str(executions)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.front_ends", str(home), *args],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._result: Result | None = None
        _running.append(self)

    def ready(self) -> None:
        """Wait until the process is ready to run the command."""
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        if line.strip() != READY:
            out, err = self.proc.communicate(timeout=PATIENCE_S)
            raise AssertionError(f"mmm {' '.join(self.args)} did not start: {line}{err}{out}")

    def go(self) -> None:
        """Let the command run."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.close()
        self.proc.stdin = None  # nothing more to send (communicate() would flush it)

    def result(self) -> Result:
        """How the command ended (waits for it)."""
        if self._result is None:
            out, err = self.proc.communicate(timeout=PATIENCE_S)
            self._result = Result(self.proc.returncode, out, err)
        return self._result

    def kill(self) -> None:
        """End it if it still runs (or waits to), and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        if self._result is None:
            self.proc.communicate()


_running: list[Cli] = []


def stop_all() -> None:
    """End every `mmm` this process started that is still running (a test that failed half
    way leaves them waiting to be let go)."""
    while _running:
        _running.pop().kill()


def started(*commands: Cli) -> list[Cli]:
    """`commands`, each ready to run."""
    for c in commands:
        c.ready()
    return list(commands)


# ---------------------------------------------------------------- at the same moment


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run `calls` in threads released at one moment by a barrier; what each returned, or
    the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE_S)
        assert not t.is_alive(), "a racer never returned"
    return results


# ---------------------------------------------------------------- the process's main


def _main(argv: Sequence[str]) -> None:
    home, args = Path(argv[0]), list(argv[1:])
    import core.bootstrap
    from tests.support.worker_process import fake_ports

    core.bootstrap.build_ports = lambda ws: fake_ports(ws.home)
    log = os.environ.get(EXECUTIONS_ENV)
    if log:
        log_executions(Path(log)).__enter__()
    # What the command would import on its way: loaded before the start, not after it.
    import core.service
    import core.store.sqlite
    import core.worker
    import mmm_cli.render  # noqa: F401
    from mmm_cli.main import cli

    if core.bootstrap.load_workspace(home).settings.backends.store == "dynamodb":
        import core.store.dynamodb

    sys.stderr.write(READY + "\n")
    sys.stderr.flush()
    if sys.stdin.readline().strip() != "go":  # the test went away without starting it
        sys.exit(125)
    cli.main(args=args, prog_name="mmm")


if __name__ == "__main__":
    _main(sys.argv[1:])
