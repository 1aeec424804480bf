"""Run benchmarks: `python -m bench` runs every `bench_*` module in this folder, in name
order, then prints one table of their ratios (each figure against its baseline measured in
the same run); `python -m bench NAME...` runs `bench_NAME` (or the module NAME itself, such
as `power_tables`); `python -m bench --list` names them; `--markdown` prints the table in
Markdown too. A module runs through its `main()`, or as a script when it has none; the
ratio rows are what `main()` returns (a list of `bench.table.Ratio`)."""

from __future__ import annotations

import importlib
import pkgutil
import runpy
import sys
import time
import traceback
from pathlib import Path

from bench.table import Ratio, markdown, render


def available() -> list[str]:
    folder = Path(__file__).resolve().parent
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(folder)])
        if not m.name.startswith("_") and m.name != "table"
    )


def resolve(name: str, names: list[str]) -> str | None:
    for candidate in (name, f"bench_{name}"):
        if candidate in names:
            return candidate
    return None


def run(name: str) -> list[Ratio]:
    module = importlib.import_module(f"bench.{name}")
    main = getattr(module, "main", None)
    if callable(main):
        rows = main()
        return [r for r in rows or [] if isinstance(r, Ratio)]
    runpy.run_module(f"bench.{name}", run_name="__main__")
    return []


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    names = available()
    if args in (["--list"], ["-l"]):
        print("\n".join(names))
        return 0
    as_markdown = "--markdown" in args
    args = [a for a in args if a != "--markdown"]
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
    ratios: list[Ratio] = []
    failed: list[str] = []
    began = time.perf_counter()
    for name in selected:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            ratios += run(name)
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        print(f"== {name} done in {time.perf_counter() - started:.1f} s", flush=True)
    if ratios:
        print("\n== ratios, each against its baseline measured in the same run")
        print(render(ratios))
        if as_markdown:
            print()
            print(markdown(ratios))
    print(f"\n{len(selected)} benchmark(s) in {time.perf_counter() - began:.0f} s", flush=True)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
