"""Model code in a child process: the one way mmm loads and runs a model outside the gateway.

A joblib or pickle file runs code when it is loaded, so no process holding
credentials (the worker, the CLI, a bot) loads one. `call(request)` runs the
operation in a child process with an allowlisted environment
(`core.isolation.child_env`), dying with its parent, in its own session,
within a timeout, working in the caller's folder. The answer is one JSON
document (anything the model prints goes elsewhere):

- `{"ok": true, "result": ...}`, or
- `{"ok": false, "kind": "InvalidInput" | "NotFound" | "TransientError" | "PortError"
  | "ChildDied", "error": "<one line>"}`, raised again in the parent as that port error
  (`ChildDied`: the model's process gave no answer; it was killed, crashed or exited).

Operations (`"op"`):

- `check`: load an artifact, read its golden data, check every golden input fits
  the model (`core.checks.check_artifact`); the result is the number of cases;
- `replay`: inputs through an endpoint's production variants and its shadow,
  captured as the gateway captures them (`core.adapters.local.serving.LocalServing.replay`).

A fork server. Importing numpy, scipy and scikit-learn costs seconds, nearly all
of a model check in a new interpreter. So the first `call` of a process starts
one long-lived child, the zygote (`python -P -m core.runtime.child`, same clean
environment, dying with its parent, in its own session), which imports those
libraries once and never loads a model. For each request (one JSON line on its
stdin) the zygote forks; the fork moves to the request's folder, sends what the
model prints to a file of its own, runs the operation, writes its answer on a
pipe of its own and exits. The zygote waits for the fork before it reads the next
request and passes exactly one answer line on to its stdout; when the fork dies
without answering (killed, crashed, `os._exit` in a hostile model), the zygote
answers `ChildDied` itself.

Why a fork server and not a persistent worker that loads models itself: a model
is code, and code that ran in a process may leave anything behind in it (a
patched library, a changed global or environment variable, a thread, a signal
handler). Every model loads in a fresh fork of a process that never ran one, so
no model can change what another's check sees: the isolation of one new
interpreter per call, without paying its imports each time.

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
import gc
import importlib
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
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

from core.isolation import child_env, die_with_parent
from core.ports import InvalidInput, NotFound, PortError, TransientError

__all__ = ["ChildDied", "call", "main"]

_ERRORS: dict[str, type[PortError]] = {
    "InvalidInput": InvalidInput,
    "NotFound": NotFound,
    "TransientError": TransientError,
    "PortError": PortError,
}
_STDERR_LIMIT = 300
_TAIL_BYTES = 4096
# An answer is a count; an answer line longer than this is a model writing on the pipe.
_ANSWER_LIMIT = 16 * 1024 * 1024
_POLL_S = 0.05
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

# What the zygote imports once, before any fork: libraries and mmm's own modules, never
# a model. Measured here (2 cores): numpy 0.15 s, joblib 0.13 s, sklearn.base 1.7 s (it
# imports scipy), sklearn.linear_model 0.3 s, mmm's loaders and serving 0.4 s. Not
# xgboost or onnxruntime: each costs about 0.05 s in a fork, and importing onnxruntime
# starts a native thread, which would make the fork unsafe.
_PRELOAD = (
    "numpy",
    "scipy",
    "joblib",
    "sklearn",
    "sklearn.base",
    "sklearn.exceptions",
    "sklearn.utils.validation",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.tree",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "core.runtime.loaders",
    "core.runtime.golden",
    "core.checks",
    "core.adapters.local.serving",
)


class ChildDied(PortError):
    """The child gave no answer: it was killed, crashed, or ran out of time."""


_ANSWER_ERRORS: dict[str, type[PortError]] = {**_ERRORS, "ChildDied": ChildDied}


def _one_line(text: str, limit: int = _STDERR_LIMIT) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return _one_line(lines[-1]) if lines else ""


def _how(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def _tail(fd: int) -> str:
    """The end of what was written in the file `fd`."""
    try:
        size = os.fstat(fd).st_size
        n = min(size, _TAIL_BYTES)
        return os.pread(fd, n, size - n).decode(errors="replace")
    except OSError:
        return ""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# ---------------------------------------------------------------- the parent side

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
        detail = _last_line(_tail(self._log.fileno()))
        return _how(returncode) + (f": {detail}" if detail else "")

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
        raise ChildDied(
            f"an unreadable answer: {_one_line(raw.decode(errors='replace'))}"
        ) from None
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


# ---------------------------------------------------------------- the child side


def _check(request: dict[str, Any]) -> int:
    from core.checks import golden_fit
    from core.runtime.golden import read_golden
    from core.runtime.loaders import load_model

    model = load_model(Path(request["artifact"]), request["library"])
    if request.get("golden") is None:
        return 0
    golden = Path(request["golden"])
    cases = read_golden(golden)
    golden_fit(model, cases, golden.name)
    return len(cases)


def _replay(request: dict[str, Any]) -> int:
    from core.adapters.local.serving import replay_inline
    from core.ports import EndpointConfig

    paths: dict[str, str] = request["paths"]
    unresolved: dict[str, list[str]] = request["unresolved"]

    def resolve(uri: str) -> Path:
        if uri in paths:
            return Path(paths[uri])
        kind, message = unresolved.get(uri, ["NotFound", f"{uri}: not resolved"])
        raise _ERRORS.get(kind, PortError)(message)

    return replay_inline(
        Path(request["home"]),
        EndpointConfig.model_validate(request["config"]),
        resolve,
        request["inputs"],
        int(request["seed"]),
        int(request["capture_max_lines"]),
    )


_OPERATIONS = {"check": _check, "replay": _replay}


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    op = _OPERATIONS.get(str(request.get("op")))
    if op is None:
        return {"ok": False, "kind": "PortError", "error": f"unknown operation {request.get('op')}"}
    try:
        return {"ok": True, "result": op(request)}
    except PortError as exc:
        kind = next((k for k, cls in _ERRORS.items() if isinstance(exc, cls)), "PortError")
        return {"ok": False, "kind": kind, "error": _one_line(str(exc), 1000)}
    except Exception as exc:  # a bug, or a model raising where no loader catches it
        return {
            "ok": False,
            "kind": "PortError",
            "error": _one_line(f"{type(exc).__name__}: {exc}"),
        }


def _preload() -> None:
    for name in _PRELOAD:
        # A module that fails to import fails again in the fork, which says why.
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    # What is imported now stays: the collector of each fork leaves it alone, so the
    # pages the forks share with the zygote stay shared.
    gc.freeze()


def _serve(request: dict[str, Any], answer_out: int) -> dict[str, Any]:
    """Fork, let the fork answer `request`, wait for it; its answer, or ChildDied."""
    log = _log_file(request.get("cwd"))
    try:
        read_end, write_end = os.pipe()
        zygote = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(read_end)
            os.close(write_end)
            return {"ok": False, "kind": "ChildDied", "error": _one_line(f"cannot fork: {exc}")}
        if pid == 0:
            _forked(request, zygote, (read_end, answer_out), write_end, log.fileno())
        os.close(write_end)
        try:
            answer, status = _collect(pid, read_end)
        finally:
            os.close(read_end)
        if answer is not None:
            return answer
        detail = _last_line(_tail(log.fileno()))
        how = _how(os.waitstatus_to_exitcode(status))
        return {"ok": False, "kind": "ChildDied", "error": how + (f": {detail}" if detail else "")}
    finally:
        log.close()


def _log_file(cwd: Any) -> IO[bytes]:
    """Where a fork's stdout and stderr go: a file without a name in the request's folder."""
    if isinstance(cwd, str):
        with contextlib.suppress(OSError):
            return tempfile.TemporaryFile(dir=cwd)
    return tempfile.TemporaryFile()


def _forked(
    request: dict[str, Any], zygote: int, close: tuple[int, ...], answer_w: int, log: int
) -> NoReturn:
    """The fork: everything before the operation runs before any model code does."""
    code = 1
    try:
        for fd in close:  # the zygote's answers and the other end of ours
            os.close(fd)
        die_with_parent()  # killed with the zygote
        if os.getppid() != zygote:  # the zygote died before that took
            os._exit(1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # the next requests are not the model's to read
        os.close(null)
        os.dup2(log, 1)  # what the model prints never reaches an answer
        os.dup2(log, 2)
        os.close(log)
        _reseed()
        cwd = request.get("cwd")
        if cwd is not None:
            os.chdir(cwd)
        answer = _answer(request)
        _write_all(answer_w, (json.dumps(answer) + "\n").encode())
        code = 0
    except BaseException:  # sys.exit() in a model, a broken pipe: no answer, say why
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)  # threads the model may have started do not hold the answer back


def _reseed() -> None:
    """Fresh randomness in each fork, as in a new interpreter: Python's `random` reseeds
    itself after a fork, numpy's global generator does not."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def _collect(pid: int, read_end: int) -> tuple[dict[str, Any] | None, int]:
    """The fork's answer (None without one) and its wait status once it has exited.

    Reads until the answer's end of line, the pipe's end, or the fork's exit (something
    the model started may hold the pipe open after the fork is gone)."""
    buffer = bytearray()
    status: int | None = None
    os.set_blocking(read_end, False)
    with selectors.DefaultSelector() as selector:
        selector.register(read_end, selectors.EVENT_READ)
        while b"\n" not in buffer and len(buffer) <= _ANSWER_LIMIT:
            if selector.select(_POLL_S):
                chunk = _read_some(read_end)
                if chunk == b"":
                    break
                buffer += chunk or b""
                continue
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                status = wait_status
                while chunk := _read_some(read_end):  # written just before it exited
                    buffer += chunk
                break
    if status is None:
        if b"\n" not in buffer and len(buffer) > _ANSWER_LIMIT:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    line, newline, _ = bytes(buffer).partition(b"\n")
    if not newline:
        return None, status
    try:
        answer = json.loads(line)
    except ValueError:
        return None, status
    return (answer if isinstance(answer, dict) else None), status


def _read_some(fd: int) -> bytes | None:
    """What the pipe holds: b"" at its end, None when nothing is there yet."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None


def main() -> None:
    """The zygote: import once, then answer each request line in a fork of its own."""
    answer_out = os.dup(1)  # answers go to the original stdout, and nothing else does
    os.dup2(2, 1)
    _preload()
    requests = sys.stdin.buffer
    while line := requests.readline():
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            answer = {"ok": False, "kind": "PortError", "error": _one_line(f"bad request: {exc}")}
        else:
            parent = request.get("parent")
            if parent is not None and os.getppid() != parent:  # no one waits for the answer
                os._exit(1)
            answer = _serve(request, answer_out)
        try:
            _write_all(answer_out, (json.dumps(answer) + "\n").encode())
        except OSError:  # the parent is gone
            break
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
