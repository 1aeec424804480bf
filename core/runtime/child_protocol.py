"""What passes between mmm and its model child: one JSON line each way, and error wording.

A request is one JSON object with an `"op"` (`core.runtime.child_operations`),
the folder to work in (`"cwd"`) and the caller's pid (`"parent"`). The answer
is one JSON document (anything the model prints goes elsewhere):

- `{"ok": true, "result": ...}`, or
- `{"ok": false, "kind": "InvalidInput" | "NotFound" | "TransientError" | "PortError"
  | "ChildDied", "error": "<one line>"}`, raised again in the parent as that port error
  (`ChildDied`: the model's process gave no answer; it was killed, crashed or exited).

Both sides (the parent in `core.runtime.child`, the zygote in
`core.runtime.zygote`) word what they report with the helpers here.
"""

from __future__ import annotations

import os
import signal

from core.ports import InvalidInput, NotFound, PortError, TransientError

__all__ = ["ERRORS", "how_it_ended", "last_line", "one_line", "tail", "write_all"]

# The port errors an answer may name (besides ChildDied, which only the parent raises).
ERRORS: dict[str, type[PortError]] = {
    "InvalidInput": InvalidInput,
    "NotFound": NotFound,
    "TransientError": TransientError,
    "PortError": PortError,
}
_STDERR_LIMIT = 300
_TAIL_BYTES = 4096


def one_line(text: str, limit: int = _STDERR_LIMIT) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return one_line(lines[-1]) if lines else ""


def how_it_ended(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def tail(fd: int) -> str:
    """The end of what was written in the file `fd`."""
    try:
        size = os.fstat(fd).st_size
        n = min(size, _TAIL_BYTES)
        return os.pread(fd, n, size - n).decode(errors="replace")
    except OSError:
        return ""


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
