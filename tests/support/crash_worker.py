"""`mmm` commands (`mmm worker --once`, for the crash matrix) in processes of their own, forked
from a server that has imported mmm and its clients once, so that each one starts in a few
milliseconds rather than the seconds a new interpreter takes to import them.

Each command is `mmm_cli.main.main` in a fresh child process (fork, no exec) with the
environment, working folder and arguments it is given, its output in a file of its own, and
its atexit functions run as at any exit; a SIGKILL kills it as it would kill `mmm`. One
difference from the `mmm` command: PyGithub does not pause between requests (by default it
waits 0.25 s between requests and 1 s between writes, as GitHub asks of real clients; the
local fake needs no such courtesy).

    python -m tests.support.crash_worker serve
        reads one JSON request a line on stdin, {"argv", "env", "cwd", "log"}; forks a child
        that runs `mmm <argv>`; answers {"pid": ...} at once, then {"code": ..., "cpu_s": ...}
        when it ends (the exit status, or minus the signal that killed it; the CPU time it
        used). Ends when stdin closes.

`Forkserver` (below) runs the server and asks it.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]

# Imported once by the server, before any child is forked (none of them starts a thread).
PRELOAD = (
    "mmm_cli.main",
    "mmm_cli.render",
    "core.bootstrap",
    "core.service",
    "core.worker",
    "core.steps",
    "core.usage",
    "core.notify",
    "core.adapters.aws.s3",
    "core.adapters.aws.sagemaker",
    "core.adapters.aws.cloudwatch",
    "core.adapters.aws.autoscaling",
    "core.adapters.comet.registry",
    "core.adapters.github.codehost",
    "core.codegen.standalone",
    "mmm_bot",
    "mmm_bot.notifier",
    "boto3",
    "botocore.session",
    "github",
    "comet_ml",
    "requests",
    "core.store.sqlite",
    "s3transfer",
    "boto3.s3.transfer",
    "prometheus_client",
    # what a shadow test's analysis and charts import (numpy, scipy, matplotlib with Agg)
    "core.analysis",
    "core.analysis.charts",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
)
# The server's own settings: charts drawn off screen, and no native thread pools started by
# the imports above (numpy's BLAS, OpenMP) in a process that forks.
SERVER_ENV = {
    "MPLBACKEND": "Agg",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become `mmm <argv>`, and never return."""
    code = 1
    try:
        out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = ["mmm", *request["argv"]]
        from mmm_cli.main import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            atexit._run_exitfuncs()
    except BaseException:  # report anything, then go
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    from github import Consts

    Consts.DEFAULT_SECONDS_BETWEEN_REQUESTS = 0
    Consts.DEFAULT_SECONDS_BETWEEN_WRITES = 0
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    answers = sys.stdout
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()
        _, status, usage = os.wait4(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        cpu = round(usage.ru_utime + usage.ru_stime, 2)
        answers.write(json.dumps({"code": code, "cpu_s": cpu}) + "\n")
        answers.flush()


class Forkserver:
    """The server in a process of its own (started with `env`), asked one command at a time."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.crash_worker", "serve"],
            cwd=ROOT,
            env={**env, **SERVER_ENV, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._answer(300)  # ready

    def _answer(self, timeout_s: float) -> dict[str, Any]:
        out: IO[str] = self.proc.stdout  # type: ignore[assignment]
        ready, _, _ = select.select([out], [], [], timeout_s)
        if not ready:
            raise TimeoutError(f"no answer from the fork server within {timeout_s:g} s")
        line = out.readline()
        if not line:
            raise RuntimeError(f"the fork server ended ({self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(
        self, argv: list[str], env: dict[str, str], cwd: Path, log: Path, timeout_s: float = 240
    ) -> tuple[int, float]:
        """`mmm <argv>` in a child: its exit status (or minus the signal that killed it), and
        the CPU time it used (its own children's left out)."""
        stdin: IO[str] = self.proc.stdin  # type: ignore[assignment]
        request = {"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)}
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        pid = int(self._answer(30)["pid"])
        deadline = time.monotonic() + timeout_s
        try:
            answer = self._answer(timeout_s)
            return int(answer["code"]), float(answer["cpu_s"])
        except TimeoutError:
            os.kill(pid, 9)  # do not leave it running after the test
            self._answer(max(5.0, deadline - time.monotonic()))
            raise

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    serve()
