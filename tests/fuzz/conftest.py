"""The fuzz tests' count of examples: each test records how many examples of each target
ran (and how many of those were accepted); the run ends with a table of them
(tests/fuzz/summary.py, printed by the root tests/conftest.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fuzz.summary import EXAMPLES
from tests.fuzz.support import ACCEPTED, COUNTS


@pytest.fixture(autouse=True)
def _count_examples(record_property: Callable[[str, Any], None]) -> Iterator[None]:
    ran, accepted = Counter(COUNTS), Counter(ACCEPTED)
    yield
    # Recorded at teardown, so the teardown report carries the counts (to the controller too,
    # under pytest-xdist).
    for target in COUNTS:
        n = COUNTS[target] - ran[target]
        if n:
            record_property(EXAMPLES + target, [n, ACCEPTED[target] - accepted[target]])
