"""Run benchmarks: `python -m bench` runs every `bench_*` module in this folder, in name
order; `python -m bench NAME...` runs `bench_NAME` (or the module NAME itself, such as
`power_tables`); `python -m bench --list` names them. A module runs through its `main()`,
or as a script when it has none."""

from __future__ import annotations

import importlib
import pkgutil
import runpy
import sys
import time
from pathlib import Path


def available() -> list[str]:
    folder = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if not m.name.startswith("_"))


def resolve(name: str, names: list[str]) -> str | None:
    for candidate in (name, f"bench_{name}"):
        if candidate in names:
            return candidate
    return None


def run(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    main = getattr(module, "main", None)
    if callable(main):
        main()
    else:
        runpy.run_module(f"bench.{name}", run_name="__main__")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    names = available()
    if args in (["--list"], ["-l"]):
        print("\n".join(names))
        return 0
    if args:
        chosen = [resolve(a, names) for a in args]
        unknown = [a for a, c in zip(args, chosen, strict=True) if c is None]
        if unknown:
            print(
                f"no benchmark {', '.join(unknown)}; available: {', '.join(names)}", file=sys.stderr
            )
            return 2
        selected = [c for c in chosen if c is not None]
    else:
        selected = [n for n in names if n.startswith("bench_")]
    for name in selected:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        run(name)
        print(f"== {name} done in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
