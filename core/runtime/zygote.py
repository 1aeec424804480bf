"""The zygote: the model child's fork server (`python -P -m core.runtime.child` runs `main`).

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

Started and spoken to by `core.runtime.child`; what goes over the pipes is
`core.runtime.child_protocol`'s, the operations are `core.runtime.child_operations`'.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import sys
import tempfile
import traceback
from typing import IO, Any, NoReturn

from core.isolation import die_with_parent
from core.runtime.child_operations import answer_to
from core.runtime.child_protocol import how_it_ended, last_line, one_line, tail, write_all

__all__ = ["main"]

# An answer is a count; an answer line longer than this is a model writing on the pipe.
_ANSWER_LIMIT = 16 * 1024 * 1024
_POLL_S = 0.05

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
            return {"ok": False, "kind": "ChildDied", "error": one_line(f"cannot fork: {exc}")}
        if pid == 0:
            _forked(request, zygote, (read_end, answer_out), write_end, log.fileno())
        os.close(write_end)
        try:
            answer, status = _collect(pid, read_end)
        finally:
            os.close(read_end)
        if answer is not None:
            return answer
        detail = last_line(tail(log.fileno()))
        how = how_it_ended(os.waitstatus_to_exitcode(status))
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
        answer = answer_to(request)
        write_all(answer_w, (json.dumps(answer) + "\n").encode())
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
            answer = {"ok": False, "kind": "PortError", "error": one_line(f"bad request: {exc}")}
        else:
            parent = request.get("parent")
            if parent is not None and os.getppid() != parent:  # no one waits for the answer
                os._exit(1)
            answer = _serve(request, answer_out)
        try:
            write_all(answer_out, (json.dumps(answer) + "\n").encode())
        except OSError:  # the parent is gone
            break
    sys.stderr.flush()
    os._exit(0)
