"""Model code in a child process: the one way mmm loads and runs a model outside the gateway.

A joblib or pickle file runs code when it is loaded, so no process holding
credentials (the worker, the CLI, a bot) loads one. `call(request)` runs the
operation in a child process with an allowlisted environment
(`core.isolation.child_env`), dying with its parent, in its own session,
within a timeout, working in the caller's folder. The answer is one JSON
document (anything the model prints goes elsewhere), raised again here as the
port error it names, or ChildDied when the model's process gave no answer (it
was killed, crashed or exited).

The operations are `core.runtime.child_operations`', the request and answer
lines `core.runtime.child_protocol`'s. The child is a fork server, the zygote
(`core.runtime.zygote`): the first `call` of a process starts one long-lived
child (`python -P -m core.runtime.child`, same clean environment, dying with its
parent, in its own session), which imports the numeric libraries once and loads
each model in a fresh fork of its own.

In the parent, calls take turns (one lock: the worker and the gateway's threads
may call at once), and a call's timeout counts from its turn. A call that times
out kills the zygote's whole process group (the fork and whatever the model
started in it); the next call starts a new zygote. A zygote found dead (end of
file, broken pipe) is replaced and the request sent again, once. The zygote's
environment is `child_env()` of the call that started it; a call whose
`child_env()` differs (the allowlisted variables changed) starts a new one.

Imports here stay light: the parent imports no numeric library, and each
operation imports what it needs when it runs (in the zygote, already imported).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from core.isolation import child_env, die_with_parent
from core.ports import PortError
from core.runtime.child_protocol import ERRORS, how_it_ended, last_line, one_line, tail
from core.runtime.zygote import main

__all__ = ["ChildDied", "call", "main"]

_STOP_GRACE_S = 1.0

# The zygote's environment on top of `child_env()`. Forking is only safe from a
# single-threaded process, and OpenBLAS (numpy's) starts a pool of threads as soon
# as numpy is imported: one thread each, set before the zygote imports anything,
# keeps it single-threaded. The forks inherit it: their numeric code runs on one
# core, which costs little here (a check predicts a few golden rows, a replay one
# input at a time).
_ZYGOTE_EXTRA = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


class ChildDied(PortError):
    """The child gave no answer: it was killed, crashed, or ran out of time."""


_ANSWER_ERRORS: dict[str, type[PortError]] = {**ERRORS, "ChildDied": ChildDied}


_T = TypeVar("_T")


class _Gone(Exception):
    """The zygote closed its end of a pipe: it died."""


class _Late(Exception):
    """The deadline passed before the answer came."""


class _Launcher:
    """The thread that starts every zygote, and lives as long as the process.

    `die_with_parent` makes the kernel kill the zygote when the *thread* that started it
    ends, not the process. Callers of `call` may be short-lived threads (a request
    handler, a test's thread) while the zygote serves every thread of the process; this
    daemon thread never ends, so the zygote dies when the process does, not before.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="mmm-zygote-launcher", daemon=True).start()

    def _serve(self) -> None:
        while True:
            job, future = self._jobs.get()
            try:
                future.set_result(job())
            except BaseException as exc:  # the caller raises it
                future.set_exception(exc)

    def run(self, job: Callable[[], _T]) -> _T:
        future: Future[_T] = Future()
        self._jobs.put((job, future))
        return future.result()


class _Zygote:
    """One zygote process, as the parent sees it."""

    def __init__(self, launcher: _Launcher, env: dict[str, str]) -> None:
        self.env = env
        # The zygote's own stderr (forks write elsewhere): read when it dies.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        try:
            self.proc: subprocess.Popen[bytes] = launcher.run(self._spawn)
        except BaseException:
            self._log.close()
            raise
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin = self.proc.stdin.fileno()
        self._stdout = self.proc.stdout.fileno()
        os.set_blocking(self._stdin, False)  # a request is written within the deadline
        self._pending = b""

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-P", "-m", "core.runtime.child"],
            cwd=tempfile.gettempdir(),  # a neutral folder: each fork moves to its request's
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            bufsize=0,
            preexec_fn=die_with_parent,
            start_new_session=True,  # a timeout ends what the model started too
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ask(self, line: bytes, deadline: float) -> bytes:
        """Send one request line and return its answer line. Raises _Gone or _Late."""
        view = memoryview(line)
        while view:
            self._wait(self._stdin, selectors.EVENT_WRITE, deadline)
            try:
                view = view[os.write(self._stdin, view) :]
            except BlockingIOError:
                continue
            except OSError:  # EPIPE: no one reads
                raise _Gone from None
        while b"\n" not in self._pending:
            self._wait(self._stdout, selectors.EVENT_READ, deadline)
            try:
                chunk = os.read(self._stdout, 65536)
            except BlockingIOError:
                continue
            except OSError:
                raise _Gone from None
            if not chunk:
                raise _Gone
            self._pending += chunk
        answer, _, self._pending = self._pending.partition(b"\n")
        return answer

    @staticmethod
    def _wait(fd: int, event: int, deadline: float) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(fd, event)
            while not selector.select(max(0.0, deadline - time.monotonic())):
                if time.monotonic() >= deadline:
                    raise _Late

    def death(self) -> str:
        """Why the zygote is gone, in one line (it closed its pipes: it ends now)."""
        try:
            returncode = self.proc.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            return "closed its pipes"
        self._log.flush()
        detail = last_line(tail(self._log.fileno()))
        return how_it_ended(returncode) + (f": {detail}" if detail else "")

    def stop(self, grace_s: float = 0.0) -> None:
        """End the zygote (after `grace_s` to exit by itself) and its process group."""
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # at the end of its input, the zygote exits
        if grace_s > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace_s)
        # Not yet reaped, its pid (the group's id) cannot have been reused.
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        self._log.close()


_lock = threading.Lock()
_launcher: _Launcher | None = None
_zygote: _Zygote | None = None
_exiting = False


def call(request: dict[str, Any], *, cwd: Path, timeout_s: float) -> Any:
    """Run one operation in a child process working in `cwd` and return its result.

    Raises the child's port error again (InvalidInput, NotFound, TransientError,
    PortError), or ChildDied with a one-line reason when there is no answer. Calls
    take turns; `timeout_s` counts from this call's turn.
    """
    cwd.mkdir(parents=True, exist_ok=True)
    env = child_env(_ZYGOTE_EXTRA)  # at call time: the allowlist decides now
    payload = {**request, "cwd": str(cwd.absolute()), "parent": os.getpid()}
    line = (json.dumps(payload) + "\n").encode()
    with _lock:
        raw = _ask(line, env, timeout_s)
    try:
        answer = json.loads(raw)
        if not isinstance(answer, dict):
            raise ValueError("not an object")
    except ValueError:
        raise ChildDied(f"an unreadable answer: {one_line(raw.decode(errors='replace'))}") from None
    if answer.get("ok"):
        return answer.get("result")
    kind = _ANSWER_ERRORS.get(str(answer.get("kind")), PortError)
    raise kind(str(answer.get("error")))


def _ask(line: bytes, env: dict[str, str], timeout_s: float) -> bytes:
    """The answer line to `line` from the zygote (started, or replaced, as needed)."""
    global _launcher, _zygote
    deadline = time.monotonic() + timeout_s
    reason = ""
    for _ in range(2):  # a zygote found dead is replaced and the request sent again, once
        if _exiting:  # the zygote is stopped or about to be: start none
            raise ChildDied("the process is exiting")
        if _zygote is not None and (_zygote.env != env or not _zygote.alive()):
            _zygote.stop()
            _zygote = None
        if _zygote is None:
            if _launcher is None:
                _launcher = _Launcher()
            _zygote = _Zygote(_launcher, env)
        zygote = _zygote
        try:
            return zygote.ask(line, deadline)
        except _Late:
            _zygote = None
            zygote.stop()
            raise ChildDied(f"no answer within {timeout_s:g} s") from None
        except _Gone:
            _zygote = None
            reason = zygote.death()
            zygote.stop()
        except BaseException:  # interrupted mid-request: its answer must not reach the next
            _zygote = None
            zygote.stop()
            raise
    raise ChildDied(reason)


def _zygote_pid() -> int | None:
    """The pid of this process's zygote while it runs (for tests)."""
    zygote = _zygote
    return zygote.pid if zygote is not None and zygote.alive() else None


@atexit.register
def _stop_at_exit() -> None:
    global _exiting, _zygote
    _exiting = True
    zygote, _zygote = _zygote, None
    if zygote is not None:
        zygote.stop(_STOP_GRACE_S)


def _forget_after_fork() -> None:
    """A fork of the parent (not through exec) has no zygote of its own, nor a launcher."""
    global _lock, _launcher, _zygote
    _lock = threading.Lock()
    _launcher = None
    _zygote = None


os.register_at_fork(after_in_child=_forget_after_fork)


if __name__ == "__main__":
    main()
