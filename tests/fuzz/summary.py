"""The fuzz tests' table of examples at the end of the run: how many examples of each target
ran, and how many of those were accepted.

Each test records its counts as properties named `EXAMPLES` + target (tests/fuzz/conftest.py),
and the root tests/conftest.py prints the table: under pytest-xdist the controller prints it,
and loads this folder's conftest only when a run names this folder. Every run loads this
module, so it imports nothing heavy (not hypothesis, as support.py does).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

EXAMPLES = "fuzz-examples:"


def write_examples(terminalreporter: Any, properties: Iterable[tuple[str, Any]]) -> None:
    """The table of the `EXAMPLES` properties among `properties`, if any."""
    totals: dict[str, list[int]] = {}
    for name, value in properties:
        if str(name).startswith(EXAMPLES):
            entry = totals.setdefault(name[len(EXAMPLES) :], [0, 0])
            entry[0] += int(value[0])
            entry[1] += int(value[1])
    if not totals:
        return
    terminalreporter.section("fuzz examples per target (ran / accepted)")
    width = max(len(t) for t in totals)
    for target in sorted(totals):
        n, accepted = totals[target]
        terminalreporter.write_line(f"{target:<{width}}  {n:6d} / {accepted:d}")
    terminalreporter.write_line(f"{'total':<{width}}  {sum(v[0] for v in totals.values()):6d}")
