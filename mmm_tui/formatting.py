"""How the dashboard shows values: states in colour, ages, step bars, versions, weights."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from core.domain import Deployment, DeploymentState, Kind
from core.events import Tone
from core.versions import EVERY_VERSION

STATE_STYLES: dict[DeploymentState, str] = {
    DeploymentState.QUEUED: "cyan",
    DeploymentState.RUNNING: "bold cyan",
    DeploymentState.WAITING_APPROVAL: "bold yellow",
    DeploymentState.SUCCEEDED: "green",
    DeploymentState.FAILED: "red",
    DeploymentState.ROLLED_BACK: "red",
    DeploymentState.ABORTED: "magenta",
}

# Short enough for a column; the detail screen names the gate it waits at.
STATE_LABELS: dict[DeploymentState, str] = {
    DeploymentState.WAITING_APPROVAL: "waiting",
    DeploymentState.ROLLED_BACK: "rolled back",
}

TONE_STYLES: dict[Tone, str] = {
    "ok": "",
    "info": "dim",
    "done": "bold green",
    "wait": "bold yellow",
    "fail": "bold red",
    "abort": "magenta",
    "undo": "magenta",
}

VERDICT_STYLES = {"pass": "bold green", "fail": "bold red", "inconclusive": "bold yellow"}


def parse_time(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def age(at: str, now: datetime) -> str:
    """How long ago `at` (ISO 8601) was, in the largest unit that says it: 42s, 5m, 3h, 2d."""
    seconds = max(0, int((now - parse_time(at)).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def utcnow() -> datetime:
    return datetime.now(UTC)


def state_text(d: Deployment) -> Text:
    """The state in its colour; a record that cannot be read as saved says so."""
    label = STATE_LABELS.get(d.state, d.state.value)
    if d.damaged:
        return Text(f"{label} (unreadable)", style="bold red")
    return Text(label, style=STATE_STYLES.get(d.state, ""))


def version_text(model_version: Any, kind: Kind = Kind.DEPLOY) -> str:
    """A version as the registry names it (opaque: never read as a number)."""
    shown = str(model_version)
    if kind is Kind.RETIRE and shown == EVERY_VERSION:
        return "all"
    return f"v{shown}"


def step_bar(done: int, total: int, state: DeploymentState, width: int = 8) -> Text:
    """A bar of the steps done out of `total`, coloured by the deployment's state."""
    total = max(total, 1)
    done = max(0, min(done, total))
    filled = round(width * done / total)
    bar = Text("█" * filled, style=STATE_STYLES.get(state, ""))
    bar.append("░" * (width - filled), style="dim")
    bar.append(f" {done}/{total}")
    return bar


def steps_done(d: Deployment, total: int) -> int:
    """How many steps of its plan `d` has passed."""
    if d.state is DeploymentState.SUCCEEDED:
        return total
    return min(d.step, total)


def percent(value: float) -> str:
    return f"{value:g}%"


def rate(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def detail_text(detail: dict[str, Any]) -> str:
    """A usage site's or audit record's detail as `key=value` words."""
    return " ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in detail.items()
        if v not in (None, "", [], {})
    )


def serving_text(endpoints: list[dict[str, Any]]) -> Text:
    """Where a version serves: `endpoint@region 90%`, shadows marked, in one line."""
    out = Text()
    for i, e in enumerate(endpoints):
        if i:
            out.append(", ")
        where = f"{e.get('endpoint')}@{e.get('region')}"
        if e.get("role") == "shadow":
            out.append(where)
            out.append(" shadow", style="italic yellow")
        else:
            out.append(where)
            out.append(f" {percent(float(e.get('weight', 0)))}", style="bold")
    return out if endpoints else Text("-", style="dim")
