"""Where untrusted code runs, and the scratch space of each process.

A joblib or pickle artifact is a program: loading it runs whatever code it
names. The application's tests are programs too. Neither runs in a process
that holds credentials: mmm runs them in child processes whose environment is
built from an allowlist (`child_env`), that die when their parent dies
(`die_with_parent`, Linux), and whose files go to the scratch folder of the
process that started them (`process_scratch`), which a later `sweep_scratch`
removes if that process was killed.

Scratch layout: `<home>/tmp/<host>-<pid>`, one folder per process, created on
first use and removed when the process exits normally (`<host>` is the host
name, and on Linux the pid namespace, e.g. `build7.4026531836-5120`). A process killed
with SIGKILL leaves its folder behind; `sweep_scratch(home)` removes it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import re
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "MMM_ROOT",
    "allowed_variable",
    "child_env",
    "die_with_parent",
    "process_scratch",
    "protect_environ",
    "scratch_owner",
    "sweep_scratch",
]

# The interpreter's import root of mmm: a Python child imports the same mmm (and, from a
# source tree, the same test helpers) as its parent.
MMM_ROOT = Path(__file__).resolve().parents[1]

# Exact names a child may see: locale, paths, the interpreter's settings, thread counts.
_ALLOWED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "NO_COLOR",
        "TMPDIR",
        "TEMP",
        "TMP",
        "LD_LIBRARY_PATH",
        "DYLD_LIBRARY_PATH",
        "SYSTEMROOT",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONHASHSEED",
        "PYTHONUTF8",
        "PYTHONIOENCODING",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONWARNINGS",
        "PYTHONFAULTHANDLER",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "OMP_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "NUMEXPR_MAX_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "MPLBACKEND",
        "MPLCONFIGDIR",
    }
)
# Prefixes a child may see (thread pools of numeric libraries, locale categories).
_ALLOWED_PREFIXES = ("LC_", "OPENBLAS_", "MKL_", "OMP_", "KMP_", "GOTO_")
# Never passed on, whatever the lists above admit: names that look like credentials, and
# the prefixes of services mmm talks to.
_SECRETISH = re.compile(
    r"TOKEN|SECRET|KEY|PASS|PWD|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|CERT|SIGNATURE",
    re.IGNORECASE,
)
_DENIED_PREFIXES = (
    "AWS_",
    "AZURE_",
    "GOOGLE_",
    "GCP_",
    "COMET_",
    "GITHUB_",
    "GH_",
    "GIT_",
    "SLACK_",
    "MMM_",
    "PYTEST_",
)


def allowed_variable(name: str) -> bool:
    """Whether a child process may see the environment variable `name`."""
    upper = name.upper()
    if _SECRETISH.search(upper) or upper.startswith(_DENIED_PREFIXES):
        return False
    return upper in _ALLOWED_NAMES or upper.startswith(_ALLOWED_PREFIXES)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child that runs untrusted code: the allowed variables of this
    process, mmm's import root appended to PYTHONPATH, then `extra` (the caller's, as given)."""
    env = {k: v for k, v in os.environ.items() if allowed_variable(k)}
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(MMM_ROOT) not in paths:
        paths.append(str(MMM_ROOT))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


# ---------------------------------------------------------------- dying with the parent

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


# Looked up now, in the parent: a child between fork and exec must not load libraries.
_prctl = _load_prctl()


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere a no-op).

    Meant as `subprocess.Popen(..., preexec_fn=die_with_parent)`: it runs in the child
    between fork and exec, and the setting survives the exec. The kernel sends the signal
    when the *thread* that started the child ends, so start children from a thread that
    lives as long as they should. Should the parent die before the setting takes, the
    child exits at once.
    """
    if _prctl is None:
        return
    parent = os.getppid()
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the setting took
        os._exit(1)


_PR_SET_DUMPABLE = 4


def protect_environ() -> None:
    """Make this process's /proc entries (its environment among them) unreadable to other
    processes of the same user, such as a model running in a child (Linux; elsewhere a
    no-op). Root can still read them; core dumps of this process are turned off with it."""
    if _prctl is not None:
        _prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


# ---------------------------------------------------------------- scratch

_SCRATCH = "tmp"
_LEGACY = ("stage-", "report-", "check-")  # loose entries of versions before per-process folders
_lock = threading.Lock()
_claimed: set[Path] = set()


@functools.cache
def _host() -> str:
    """Where a pid means something: the host name and, on Linux, the pid namespace (two
    containers may share a host name and a workspace, but never their pids)."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "localhost"
    try:
        namespace = re.sub(r"\D", "", os.readlink("/proc/self/ns/pid"))
    except OSError:
        return host
    return f"{host}.{namespace}" if namespace else host


def scratch_owner(folder: Path) -> tuple[str, int] | None:
    """(host, pid) of a per-process scratch folder's name, or None for any other name."""
    host, sep, pid = folder.name.rpartition("-")
    if not sep or not host or not pid.isdigit():
        return None
    return host, int(pid)


def process_scratch(home: Path) -> Path:
    """This process's scratch folder in the workspace at `home`, created on first use.

    A folder already named after this process when it first asks was left by an earlier
    process that had the same pid (a restarted container, say): its content is stale and
    is removed. The folder is removed when this process exits normally.
    """
    folder = Path(home).resolve() / _SCRATCH / f"{_host()}-{os.getpid()}"
    with _lock:
        if folder not in _claimed:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
            _claimed.add(folder)
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap, harmless liveness test: leave the folder alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, owned by someone else
        return True
    return True


def sweep_scratch(home: Path) -> list[Path]:
    """Remove the scratch of processes that are gone; returns what was removed.

    Cheap (one listing of `<home>/tmp`) and idempotent: call it whenever a worker
    starts. Removed:

    - a per-process folder of this host whose pid is not alive, or named after this
      process but not made by it (its pid was reused);
    - loose `stage-*`, `report-*` and `check-*` entries directly under `<home>/tmp`,
      left by versions before per-process folders.

    Why a pid stands for the heartbeat here: the store's worker heartbeat says that
    a worker is alive, but a folder belongs to one process (a worker, `mmm up`, or a
    one-shot `mmm deploy`), and on the host that made it the kernel knows for sure
    whether that process still runs, at once, while an expired heartbeat only
    suggests it after the lease time. A reused pid errs on the safe side (the folder
    stays until that process ends too). Folders of other hosts sharing the workspace
    are left to their own host's sweep: their pids mean nothing here.
    """
    root = Path(home).resolve() / _SCRATCH
    try:
        entries = list(os.scandir(root))
    except OSError:  # no scratch yet (or none we may read): nothing to sweep
        return []
    host, me = _host(), os.getpid()
    removed: list[Path] = []
    with _lock:
        for entry in entries:
            path = Path(entry.path)
            owner = scratch_owner(path)
            if entry.name.startswith(_LEGACY):
                stale = True
            elif owner is None or owner[0] != host:
                continue
            elif owner[1] == me:
                stale = path not in _claimed
            else:
                stale = not _alive(owner[1])
            if not stale:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            removed.append(path)
    return removed
