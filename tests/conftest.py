"""What every test run shares: the summaries at the end of the run.

The crash matrix on the real adapters (tests/e2e/test_crash_real_backends.py) records, per
strategy, how many injection points it killed a worker at and how many of those resumed to
the end of the uninterrupted run (a `crash-matrix` property of the test); the fuzz tests
record how many examples of each target ran (tests/fuzz/summary.py). Test processes under
pytest-xdist hand their reports to the controller, which prints the tables here: it collects
no tests, so it loads no conftest below this one unless a run names that folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.fuzz.summary import write_examples

CRASH_MATRIX = "crash-matrix"


def _properties(terminalreporter: Any, when: str) -> Iterator[tuple[str, Any]]:
    # Each report of a test carries all it recorded so far: one phase counts each once.
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) == when:
                yield from getattr(report, "user_properties", [])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write_examples(terminalreporter, _properties(terminalreporter, "teardown"))
    rows: list[dict[str, Any]] = [
        value
        for name, value in _properties(terminalreporter, "call")
        if name == CRASH_MATRIX and isinstance(value, dict)
    ]
    if not rows:
        return
    terminalreporter.section("crash matrix on the real adapters")
    header = ("strategy", "plan points", "killed at", "same end", "known", "s", "cpu s", "ref s")
    width = (12, 11, 9, 8, 5, 5, 5, 5)

    def line(cells: tuple[object, ...]) -> str:
        texts = [str(c) for c in cells]
        padded = [
            t.ljust(w) if i == 0 else t.rjust(w)
            for i, (t, w) in enumerate(zip(texts, width, strict=True))
        ]
        return " ".join(padded)

    terminalreporter.write_line(line(header))
    for row in sorted(rows, key=lambda r: str(r.get("strategy"))):
        terminalreporter.write_line(
            line(
                (
                    row["strategy"],
                    row.get("plan_points", ""),
                    row["cases"],
                    row["same"],
                    row.get("known", 0),
                    row["seconds"],
                    row.get("cpu_seconds", ""),
                    row.get("reference_seconds", ""),
                )
            )
        )
        for failed in row.get("failed") or []:
            terminalreporter.write_line(f"    not the same end: {failed}")
    terminalreporter.write_line(
        line(
            (
                "total",
                sum(int(r.get("plan_points", 0)) for r in rows),
                sum(int(r["cases"]) for r in rows),
                sum(int(r["same"]) for r in rows),
                sum(int(r.get("known", 0)) for r in rows),
                "",
                sum(int(r.get("cpu_seconds", 0)) for r in rows),
                "",
            )
        )
    )
    terminalreporter.write_line(
        "killed at: cases run (a worker SIGKILLed at one point, the next one run to the end); "
        "same end: exactly the uninterrupted run's end; known: exactly the differences of a "
        "known defect (listed in the test module); s, cpu s: the strategy's whole test (its "
        "workers' CPU included); ref s: its uninterrupted run, one worker process"
    )
