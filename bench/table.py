"""One row per benchmark ratio, and the table `python -m bench` prints after every module ran.

A `Ratio` is a figure measured beside its baseline in the same run (alternating rounds, so
drift of the machine hits both alike): `ratio` is measured / baseline, and the goal bounds
that ratio from above (`at_most`, `under`) or from below (`at_least`), or is absent when
the row is context only. Where the two were measured in the same rounds, `paired` is the
median of the rounds' own ratios: drift between rounds then cancels, where the ratio of the
pooled figures carries it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Bound = Literal["at most", "under", "at least"]


@dataclass(frozen=True)
class Goal:
    bound: Bound
    ratio: float

    def met(self, ratio: float) -> bool:
        if self.bound == "at most":
            return ratio <= self.ratio
        if self.bound == "under":
            return ratio < self.ratio
        return ratio >= self.ratio

    def __str__(self) -> str:
        symbol = {"at most": "<=", "under": "<", "at least": ">="}[self.bound]
        return f"{symbol} {self.ratio:g}x"


def at_most(ratio: float) -> Goal:
    return Goal("at most", ratio)


def under(ratio: float) -> Goal:
    return Goal("under", ratio)


def at_least(ratio: float) -> Goal:
    return Goal("at least", ratio)


@dataclass(frozen=True)
class Ratio:
    """`name` measured `value` against `baseline` (both in `unit`) in the same run."""

    name: str
    value: float
    baseline: float
    unit: str
    goal: Goal | None = None
    paired: float | None = None  # the median of per-round ratios, when rounds pair them

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.paired is None else self.paired

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self.ratio)


def _figure(value: float, unit: str) -> str:
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}"


def rows(ratios: Iterable[Ratio]) -> list[list[str]]:
    out = []
    for r in ratios:
        met = "-" if r.met is None else "yes" if r.met else "NO"
        goal = "-" if r.goal is None else str(r.goal)
        out.append(
            [
                r.name,
                _figure(r.value, r.unit),
                _figure(r.baseline, r.unit),
                f"{r.ratio:.2f}x" if r.ratio >= 0.1 else f"{r.ratio:.3f}x",
                goal,
                met,
            ]
        )
    return out


HEADERS = ["benchmark", "measured", "baseline", "ratio", "goal", "met?"]


def render(ratios: Iterable[Ratio]) -> str:
    """The table as aligned text, for a terminal."""
    body = rows(ratios)
    widths = [max(len(line[i]) for line in [HEADERS, *body]) for i in range(len(HEADERS))]
    right = {1, 2, 3}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(HEADERS), rule, *(line(cells) for cells in body)])


def markdown(ratios: Iterable[Ratio]) -> str:
    """The same table in Markdown (what the README's "Measured" section holds)."""
    body = rows(ratios)
    align = ["---", "---:", "---:", "---:", "---", "---"]
    lines = [HEADERS, align, *body]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
