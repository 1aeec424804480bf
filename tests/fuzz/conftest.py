"""The fuzz tests' count of examples: each test records how many examples of each target
ran (and how many of those were accepted), and the run ends with a table of them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fuzz.support import ACCEPTED, COUNTS

_PREFIX = "fuzz-examples:"


@pytest.fixture(autouse=True)
def _count_examples(record_property: Callable[[str, Any], None]) -> Iterator[None]:
    ran, accepted = Counter(COUNTS), Counter(ACCEPTED)
    yield
    for target in COUNTS:
        n = COUNTS[target] - ran[target]
        if n:
            record_property(_PREFIX + target, [n, ACCEPTED[target] - accepted[target]])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    totals: dict[str, list[int]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            # recorded at the fixture's teardown: the teardown report carries them
            if getattr(report, "when", None) != "teardown":
                continue
            for name, value in getattr(report, "user_properties", []):
                if str(name).startswith(_PREFIX):
                    entry = totals.setdefault(name[len(_PREFIX) :], [0, 0])
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
