"""How the CLI shows things to a person: tables, deployments, progress lines."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from core.domain import Deployment, DeploymentState, UsageSite
from core.events import DeploymentEvent, Tone
from core.versions import EVERY_VERSION

STATE_COLOURS = {
    DeploymentState.SUCCEEDED: "green",
    DeploymentState.WAITING_APPROVAL: "yellow",
    DeploymentState.RUNNING: "cyan",
    DeploymentState.QUEUED: "cyan",
    DeploymentState.FAILED: "red",
    DeploymentState.ROLLED_BACK: "red",
    DeploymentState.ABORTED: "magenta",
}

TONE_COLOURS: dict[Tone, str | None] = {
    "ok": None,
    "info": None,
    "done": "green",
    "wait": "yellow",
    "fail": "red",
    "abort": "magenta",
    "undo": "magenta",
}


def emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, default=str))


def table(rows: list[list[str]], headers: list[str]) -> str:
    # Colour codes take no room on screen: measure without them.
    widths = [
        max(len(click.unstyle(str(x))) for x in col) for col in zip(headers, *rows, strict=False)
    ]

    def cell(value: str, width: int) -> str:
        return value + " " * (width - len(click.unstyle(value)))

    lines = ["  ".join(cell(h.upper(), w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(cell(str(c), w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def state(d: Deployment) -> str:
    if d.damaged:  # `mmm status ID` says why; the listing only flags it
        return click.style(f"{d.state.value} (unreadable record)", fg="red")
    return click.style(d.state.value, fg=STATE_COLOURS.get(d.state))


def deployment_line(d: Deployment) -> list[str]:
    version = "all" if d.version == EVERY_VERSION else f"v{d.version}"
    return [d.id, d.model, version, d.endpoint, d.strategy, state(d), d.stage.value, d.requested_by]


def deployments_table(items: list[Deployment]) -> str:
    if not items:
        return "no deployments yet (start one with `mmm deploy MODEL VERSION --endpoint NAME`)"
    headers = ["id", "model", "version", "endpoint", "strategy", "state", "stage", "by"]
    return table([deployment_line(d) for d in items], headers)


def describe(d: Deployment) -> str:
    lines = [
        f"{d.id}  {d.model} v{d.version} -> {d.endpoint}  ({d.strategy})"
        if d.version
        else f"{d.id}  retire {d.model} (all versions)",
        f"  state:     {state(d)}   stage: {d.stage.value}",
        f"  requested: {d.requested_by} at {d.created_at}",
    ]
    if d.state is DeploymentState.WAITING_APPROVAL:
        lines.append(
            f"  waiting:   gate {d.waiting_at}; approve with `mmm approve {d.id}` (another user)"
        )
    for a in d.approvals:
        lines.append(f"  approved:  {a.by} at {a.at} ({a.gate})")
    if d.analysis:
        text = (
            d.analysis.get("text")
            or f"{d.analysis.get('verdict')}: {d.analysis.get('summary', '')}"
        )
        lines.append("  analysis:")
        lines += [f"    {line}" for line in str(text).splitlines()]
        lines += [f"    chart: {uri}" for uri in d.analysis.get("report", [])]
    if d.shown_error:
        lines.append(f"  reason:    {d.shown_error}")
    lines.append("  events:")
    lines += [f"    {event_line(e)}" for e in d.events[-30:]]
    return "\n".join(lines)


def event_line(e: DeploymentEvent) -> str:
    """An event of the history, at the time of day it happened, coloured by its tone."""
    return f"{e.at[11:19]} " + click.style(e.line(), fg=TONE_COLOURS[e.tone])


def progress_line(e: DeploymentEvent) -> str | None:
    """One line for an event while a deployment runs (None: not worth a line)."""
    return None if e.QUIET else event_line(e)


class ProgressPrinter:
    """Prints each new event of a deployment as one line on stderr while it runs."""

    def __init__(self, quiet: bool = False) -> None:
        self.seen: dict[str, int] = {}
        self.quiet = quiet

    def __call__(self, d: Deployment) -> None:
        start = self.seen.get(d.id, 0)
        self.seen[d.id] = len(d.events)
        if self.quiet:
            return
        for e in d.events[start:]:
            line = progress_line(e)
            if line is not None:
                click.echo(f"  {line}", err=True)
        sys.stderr.flush()


def usage_table(sites: list[UsageSite]) -> str:
    if not sites:
        return "no usage sites"
    rows = [
        [s.kind.value, f"v{s.version}", s.location, s.region or "-", _detail(s.detail)]
        for s in sites
    ]
    return table(rows, ["kind", "version", "location", "region", "detail"])


def _detail(detail: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in detail.items())


def models_table(models: list[dict[str, Any]]) -> str:
    if not models:
        return (
            "no models registered (add one with `mmm register MODEL --artifact PATH --library LIB`)"
        )
    rows = []
    for m in models:
        for v in m["versions"]:
            where = ", ".join(
                f"{e['endpoint']}({e['role'][0]}{e['weight']:g}%)" for e in v["endpoints"]
            )
            rows.append(
                [
                    m["name"],
                    f"v{v['version']}",
                    v["library"],
                    v["status"],
                    m["owner"] or "-",
                    where or "-",
                ]
            )
    return table(rows, ["model", "version", "library", "status", "owner", "serving"])
