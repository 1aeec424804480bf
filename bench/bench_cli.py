"""How fast `mmm status` answers, against a Python that only imports what the CLI is built on.

On a fresh embedded workspace (`mmm init`), in alternating rounds, each a new process:

- mmm: `mmm --home WS status` through the installed `mmm` entry point (what a person types);
- baseline: `python -c 'import click, pydantic, yaml, sqlite_utils'`, the libraries the
  command was built on (its options, its records, its settings, its store), the goal's
  baseline;
- imported: `python -c 'import click, pydantic, yaml, sqlite3'`, the libraries it imports
  now that the store talks to SQLite itself (sqlite_utils imports numpy, 70 to 120 ms
  that the goal's baseline holds and mmm status no longer spends): context, no goal.

Both run with Python's bytecode cache on, as an installed mmm runs (kept in a temporary
folder through PYTHONPYCACHEPREFIX, so nothing is written beside the sources, and filled
by a first untimed run of each; PYTHONDONTWRITEBYTECODE is dropped).

Reported: the median wall time of each and their ratio (goal: at most 1.5x). For context,
one `python -X importtime` run of each tells what `mmm status` imports beyond the
baseline, by top-level package (self time summed), largest first.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.table import Ratio, at_most

ROUNDS = 15
GOAL = 1.5
BASELINE = "import click, pydantic, yaml, sqlite_utils"
IMPORTED = "import click, pydantic, yaml, sqlite3"
SHOWN = 10
IMPORT_RUNS = 3
OURS = ("core", "mmm_cli", "mmm_tui", "mmm_bot")


def entry_point() -> Path:
    return Path(sys.executable).parent / "mmm"


def _env(home: Path, pycache: Path) -> dict[str, str]:
    dropped = ("SLACK_", "MMM_", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return {**env, "MMM_HOME": str(home), "MMM_USER": "bench", "PYTHONPYCACHEPREFIX": str(pycache)}


def wall(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return elapsed


@dataclass(frozen=True)
class Imported:
    name: str
    self_us: int
    cumulative_us: int
    importer: str | None  # the module whose import brought it in (None: the top level)


def imports(cmd: list[str], env: dict[str, str]) -> list[Imported]:
    """Every module a run of `cmd` imports, from `python -X importtime` (children come
    before their importer, one level deeper)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd], env=env, capture_output=True, text=True
    )
    rows: list[tuple[int, int, int, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        own, total, label = line.removeprefix("import time:").split("|")
        if own.strip().isdigit():
            depth = (len(label) - len(label.lstrip())) // 2
            rows.append((int(own), int(total), depth, label.strip()))
    out = []
    for i, (self_us, cumulative, depth, name) in enumerate(rows):
        importer = next((r[3] for r in rows[i + 1 :] if r[2] == depth - 1), None)
        out.append(Imported(name, self_us, cumulative, importer))
    return out


def ours(name: str | None) -> bool:
    return name is not None and name.split(".")[0] in OURS


def heaviest(runs: list[list[Imported]], base: set[str]) -> tuple[float, list[tuple[str, float]]]:
    """The median over `runs` of our own modules' import time, and of each library import
    our modules make that the baseline does not (cumulative: with what it imports)."""
    # A package imported through importlib.import_module has no line of its own, only its
    # submodules (sqlite_utils imports numpy so): the baseline has it when it has one of them.
    packages = {n.rsplit(".", k)[0] for n in base for k in range(n.count(".") + 1)}
    own: list[float] = []
    edges: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        own.append(sum(m.self_us for m in run if ours(m.name)) / 1000)
        for m in run:
            if m.name not in packages and not ours(m.name) and ours(m.importer):
                edges[f"{m.importer} -> {m.name}"].append(m.cumulative_us / 1000)
    ranked = sorted(((k, statistics.median(v)) for k, v in edges.items()), key=lambda kv: -kv[1])
    return statistics.median(own), ranked


def main() -> list[Ratio]:
    with tempfile.TemporaryDirectory(prefix="mmm-bench-cli-") as tmp:
        home = Path(tmp) / "ws"
        env = _env(home, Path(tmp) / "pycache")
        mmm = [str(entry_point()), "--home", str(home)]
        wall([*mmm, "init"], env)
        cases = {
            "mmm status": [*mmm, "status"],
            "baseline": [sys.executable, "-c", BASELINE],
            "imported": [sys.executable, "-c", IMPORTED],
        }
        for cmd in [*cases.values(), *cases.values()]:
            wall(cmd, env)  # fill the bytecode cache, warm the page cache
        times: dict[str, list[float]] = {name: [] for name in cases}
        for n in range(ROUNDS):
            order = list(cases) if n % 2 == 0 else list(reversed(cases))
            for name in order:
                times[name].append(wall(cases[name], env))
        status = [str(entry_point()), "--home", str(home), "status"]
        runs = [imports(status, env) for _ in range(IMPORT_RUNS)]
        base = {m.name for m in imports(["-c", BASELINE], env)}
    t_mmm, t_base, t_imported = (statistics.median(times[n]) for n in cases)
    print(f"CLI start: {ROUNDS} alternating rounds, a new process each, fresh embedded workspace")
    for name in cases:
        values = times[name]
        print(
            f"  {name:<11} median {statistics.median(values) * 1000:7.0f} ms   "
            f"min {min(values) * 1000:7.0f} ms   max {max(values) * 1000:7.0f} ms"
        )
    ratio = t_mmm / t_base
    print(f"  ratio mmm status / baseline x{ratio:.2f} (goal <= x{GOAL:g})")
    print(f"  ratio mmm status / imported x{t_mmm / t_imported:.2f} (no goal)")
    own, ranked = heaviest(runs, base)
    print(
        f"  what mmm status imports beyond the baseline (-X importtime, median of {IMPORT_RUNS} "
        f"runs): mmm's own modules {own:.0f} ms; the largest libraries they import:"
    )
    for edge, ms in ranked[:SHOWN]:
        print(f"    {edge:<60} {ms:7.1f} ms")
    return [
        Ratio("mmm status / python importing its libraries", t_mmm, t_base, "s", at_most(GOAL)),
        Ratio("mmm status / python importing what it imports now", t_mmm, t_imported, "s"),
    ]


if __name__ == "__main__":
    main()
