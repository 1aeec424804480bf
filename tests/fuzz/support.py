"""What the fuzz tests share: the settings profiles and each property's fast and slow tests,
the count of examples per target, the `mmm` command run in this process, and snapshots of
what refused input must leave alone.

Every property asserts the same thing in its own terms: the input is accepted (and then
it is valid by the documented rules) or refused with one clear line (the command: a
non-zero exit, one line on stderr, no traceback; HTTP: a 4xx with a one-line JSON
error), and a refusal changes no state and writes nothing outside the workspace.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# ---------------------------------------------------------------- profiles

_SUPPRESSED = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
    # The examples' count (tests/fuzz/conftest.py) is a function-scoped fixture that spans
    # every example of a test on purpose. Workspaces, servers and the bot are module-scoped
    # and shared by the examples, each comparing their state before and after itself.
    HealthCheck.function_scoped_fixture,
]

# `make test`: a few dozen examples per target. `make test-slow`: many more. Both draw the
# same examples every run (derandomize), so a commit's verdict does not depend on luck; a
# new input found by chance would fail whichever change happened to run next. `make fuzz`
# (MMM_FUZZ_EXPLORE=1) draws new ones each run, ten times as many: that is where new
# defects are looked for, and a failing example found there becomes a test here.
# No example database (nothing is written into the repository); a failure prints its
# reproduction blob (`@reproduce_failure`).
EXPLORE = os.environ.get("MMM_FUZZ_EXPLORE") == "1"
_SCALE = 10 if EXPLORE else 1
settings.register_profile(
    "fuzz",
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=not EXPLORE,
    print_blob=True,
    suppress_health_check=_SUPPRESSED,
)
FAST = settings.get_profile("fuzz")


def fast(max_examples: int) -> settings:
    return settings(FAST, max_examples=max_examples)


def slow(max_examples: int) -> settings:
    return settings(FAST, max_examples=max_examples * _SCALE)


Test = Callable[..., None]


def fast_and_slow(
    check: Test, fast_examples: int, slow_examples: int, **strategies: st.SearchStrategy[Any]
) -> tuple[Test, Test]:
    """One property as its two tests: `fast_examples` examples in `make test`, and, marked
    slow, `slow_examples` in `make test-slow`. `check` takes the tests' fixtures by name,
    then one argument per strategy. Bind the pair to `test_NAME, test_NAME_slow`: pytest
    collects a test by the name it is bound to. A failure is reported as `check`'s, and
    `@reproduce_failure` goes on `check`."""
    return (
        fast(fast_examples)(given(**strategies)(check)),
        pytest.mark.slow(slow(slow_examples)(given(**strategies)(check))),
    )


# ---------------------------------------------------------------- counting

COUNTS: Counter[str] = Counter()
ACCEPTED: Counter[str] = Counter()
_count_lock = threading.Lock()


def ran(target: str, accepted: bool) -> None:
    """One example of `target` ran to its end; `accepted`: the input was taken."""
    with _count_lock:
        COUNTS[target] += 1
        if accepted:
            ACCEPTED[target] += 1


# ---------------------------------------------------------------- one line, no traceback


def one_line(text: str, what: str) -> str:
    """`text` is one readable line (a trailing newline allowed), with no traceback."""
    line = text[:-1] if text.endswith("\n") else text
    assert line.strip(), f"{what}: empty"
    assert "\n" not in line and "\r" not in line, f"{what}: more than one line: {text[:500]!r}"
    assert "Traceback (most recent call last)" not in text, f"{what}: a traceback: {text[:500]}"
    return line


# ---------------------------------------------------------------- the command, in process


@dataclass
class Result:
    code: int
    out: str
    err: str
    logged: list[logging.LogRecord] = field(default_factory=list)

    def refused_cleanly(self, *codes: int) -> str:
        """A refusal: a non-zero exit (one of `codes`, if given), one line on stderr
        starting `mmm: error:`, nothing on stdout, no traceback anywhere."""
        assert self.code != 0, f"exit 0 for a refusal? {self.out[:300]!r} {self.err[:300]!r}"
        if codes:
            assert self.code in codes, (self.code, self.err[:500])
        line = one_line(self.err, "stderr")
        assert line.startswith("mmm: error: "), line[:300]
        assert self.out == "", f"stdout of a refusal: {self.out[:300]!r}"
        self.no_traceback()
        return line

    def no_traceback(self) -> None:
        for text in (self.out, self.err):
            assert "Traceback (most recent call last)" not in text, text[:2000]
        tracebacks = [r for r in self.logged if r.exc_info]
        assert not tracebacks, [r.getMessage() for r in tracebacks]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def logged() -> Iterator[list[logging.LogRecord]]:
    """Warnings and errors logged meanwhile (a logged traceback is a failure too)."""
    handler = _Records()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)


_cli_lock = threading.Lock()


def run_cli(args: list[str], env: dict[str, str], sandbox: Path) -> Result:
    """`mmm ARGS` through its real entry point (`mmm_cli.main.main`, whose one-line usage
    errors `cli` alone would not give), in this process: stdin, stdout and stderr are
    click's test streams, the environment is `env` over this process's, the working
    folder is `sandbox/cwd` and temporary files go to `sandbox/tmp`. An exception that
    escapes the entry point is raised here (the test fails with it)."""
    from mmm_cli.main import main

    runner = CliRunner()
    cwd, tmp = sandbox / "cwd", sandbox / "tmp"
    cwd.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    full_env = {"TMPDIR": str(tmp), "COMET_ERROR_TRACKING_ENABLE": "false", **env}
    with (
        _cli_lock,
        runner.isolation(env=full_env) as (out, err, _mixed),
        logged() as records,
        # Not this test process's /proc entries: it runs other tests after this one.
        mock.patch("core.isolation.protect_environ", lambda: None),
        mock.patch.object(tempfile, "tempdir", str(tmp)),
        mock.patch.object(sys, "argv", ["mmm", *args]),
        contextlib.chdir(cwd),
    ):
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    return Result(
        code,
        out.getvalue().decode("utf-8", "backslashreplace"),
        err.getvalue().decode("utf-8", "backslashreplace"),
        list(records),
    )


# ---------------------------------------------------------------- snapshots

# Tables that say who is alive and who holds what for a moment, not what was done.
_VOLATILE_TABLES = {"leases", "workers"}


def db_rows(path: Path, skip: set[str] | frozenset[str] = frozenset()) -> dict[str, list[Any]]:
    """Every row of every table of a SQLite file (empty when there is no file)."""
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: sorted(map(repr, db.execute(f'SELECT * FROM "{t}"').fetchall()))
            for t in sorted(tables)
            if t not in skip
        }
    finally:
        db.close()


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


def tree(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """Every folder and file under `root` (not under `skip`): path -> "dir" or a digest."""
    found: dict[str, str] = {}
    skipped = {str(s) for s in skip}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skipped]
        for d in dirs:
            found[os.path.join(folder, d)] = "dir"
        for f in files:
            p = Path(folder, f)
            if str(p) not in skipped:
                found[str(p)] = _digest(p) if p.is_file() else "special"
    return found


def workspace_state(home: Path, skip_tables: frozenset[str] = frozenset()) -> dict[str, Any]:
    """What a refused request must leave as it was: the store (deployments, audit, feed,
    locks ...), the registry, the serving table and every file of the workspace but its
    scratch and the databases' own files (compared by their rows)."""
    files = {
        k: v
        for k, v in tree(home, skip=(home / "tmp", home / "checks")).items()
        if not k.endswith((".db", ".db-wal", ".db-shm", ".db-journal"))
    }
    return {
        "state": db_rows(home / "state.db", _VOLATILE_TABLES | skip_tables),
        "registry": db_rows(home / "registry" / "registry.db"),
        "serving": db_rows(home / "serving.db"),
        "files": files,
    }


def changed_outside(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Entries new or changed between two `tree`s (removed ones are not writes)."""
    return sorted(k for k, v in after.items() if before.get(k) != v)
