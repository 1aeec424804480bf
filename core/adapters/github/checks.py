"""The verdict of a pull request's checks: the commit statuses and check runs of its head.

A failing one decides at once (named in the summary); all of them done and good pass;
anything else is still running, until the deadline, after which the checks fail, saying
which are still pending, or that none ever reported (no workflow ran on the head).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.ports import CheckResult

_BAD_CONCLUSIONS = frozenset(
    {"failure", "timed_out", "cancelled", "action_required", "startup_failure", "stale"}
)
_BAD_STATES = frozenset({"failure", "error"})


@dataclass(frozen=True)
class Check:
    """One commit status or check run as GitHub reports it."""

    name: str
    done: bool
    good: bool
    detail: str = ""


def from_status(context: str, state: str, description: str | None) -> Check:
    return Check(context, state != "pending", state == "success", description or state)


def from_run(name: str, status: str, conclusion: str | None, summary: str | None) -> Check:
    done = status == "completed"
    good = done and conclusion not in _BAD_CONCLUSIONS
    return Check(name, done, good, summary or conclusion or status)


def _named(checks: list[Check]) -> str:
    return ", ".join(c.name + (f" ({c.detail})" if c.detail else "") for c in checks)


def verdict(
    checks: list[Check], head: str, waited_s: float, timeout_s: float
) -> CheckResult | None:
    """The result of `checks` on `head`, or None while they run and time remains."""
    failing = [c for c in checks if c.done and not c.good]
    if failing:
        word = "check" if len(failing) == 1 else "checks"
        return CheckResult(passed=False, summary=f"failing {word}: {_named(failing)}")
    pending = [c for c in checks if not c.done]
    if checks and not pending:
        names = ", ".join(c.name for c in checks)
        return CheckResult(passed=True, summary=f"{len(checks)} passed: {names}")
    if waited_s < timeout_s:
        return None
    if not checks:
        return CheckResult(
            passed=False,
            summary=(
                f"no check reported on {head[:12]} within {timeout_s:g}s: is the mmm workflow "
                "installed and enabled in the repository?"
            ),
        )
    names = ", ".join(c.name for c in pending)
    return CheckResult(
        passed=False, summary=f"checks did not finish within {timeout_s:g}s: pending {names}"
    )
