"""Block Kit rendering: every message the bot shows, built from the core's typed read model
(a Deployment, its plan, its events, the previews). No Slack call and no service call here.

Text that comes from outside (errors, reasons, summaries) is escaped: in Slack's mrkdwn
`<`, `>` and `&` make links and mentions, so a reason could otherwise ping a channel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core.domain import Deployment, DeploymentState, Kind, Phase
from core.events import AbortRequested, DeploymentEvent
from core.machine import plan_of
from core.preview import AbortPreview, RetirePreview
from core.spec import SlackSettings
from mmm_bot.grammar import USAGE
from mmm_bot.identity import shown_identity

Block = dict[str, Any]

# action_id of each button; the listeners in mmm_bot.listeners.actions match on them
APPROVE = "mmm_approve"
ABORT = "mmm_abort"
ABORT_CONFIRMED = "mmm_abort_confirmed"
RETIRE_CONFIRMED = "mmm_retire_confirmed"

# Slack's limits: a section's text, a message's blocks, a button's value
_SECTION_MAX = 3000
_BLOCKS_MAX = 50
_BAR_WIDTH = 12
_EVENT_LINES = 15

_STATE_ICON = {
    DeploymentState.QUEUED: ":hourglass_flowing_sand:",
    DeploymentState.RUNNING: ":arrows_counterclockwise:",
    DeploymentState.WAITING_APPROVAL: ":double_vertical_bar:",
    DeploymentState.SUCCEEDED: ":white_check_mark:",
    DeploymentState.FAILED: ":x:",
    DeploymentState.ABORTED: ":no_entry:",
    DeploymentState.ROLLED_BACK: ":leftwards_arrow_with_hook:",
}
_VERDICT_ICON = {"pass": ":white_check_mark:", "fail": ":x:", "inconclusive": ":grey_question:"}
_ENDED = {
    DeploymentState.SUCCEEDED: "Succeeded",
    DeploymentState.FAILED: "Failed",
    DeploymentState.ABORTED: "Aborted",
    DeploymentState.ROLLED_BACK: "Rolled back",
}


@dataclass(frozen=True)
class Message:
    """A message: its plain text (notifications, screen readers) and its blocks."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


# ---------------------------------------------------------------- small pieces


def escape(text: str) -> str:
    """`text` safe in mrkdwn: no link, mention or channel ping can come out of it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int = _SECTION_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text)}}


def context(*parts: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(p)} for p in parts]}


def code(text: str) -> str:
    """A code block in mrkdwn (``` inside would end it early: drop them)."""
    body = _clip(escape(text).replace("```", "'''"), _SECTION_MAX - 8)
    return f"```{body}```"


def confirm(title: str, text: str, yes: str) -> dict[str, Any]:
    """Block Kit's confirmation dialog, shown before a button acts."""
    return {
        "title": {"type": "plain_text", "text": title},
        "text": {"type": "mrkdwn", "text": _clip(text, 300)},
        "confirm": {"type": "plain_text", "text": yes},
        "deny": {"type": "plain_text", "text": "Cancel"},
        "style": "danger",
    }


def button(
    label: str,
    action_id: str,
    value: dict[str, Any],
    style: str | None = None,
    confirmation: dict[str, Any] | None = None,
) -> Block:
    out: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": json.dumps(value, separators=(",", ":")),
    }
    if style:
        out["style"] = style
    if confirmation:
        out["confirm"] = confirmation
    return out


def button_value(raw: str) -> dict[str, Any]:
    """What a button of ours carries (ValueError when it is not ours)."""
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not a button value of mmm")
    return value


def progress_bar(done: int, total: int, width: int = _BAR_WIDTH) -> str:
    """`done` of `total` steps as a bar of `width` characters."""
    filled = round(width * done / total) if total else width
    return "▰" * filled + "▱" * (width - filled)


def event_line(e: DeploymentEvent) -> str:
    """An event at the time of day it happened (UTC), as the CLI prints it."""
    return f"{e.at[11:19]} {e.line()}"


def thread_lines(events: list[DeploymentEvent]) -> str | None:
    """A thread reply for new events (None: none worth a line)."""
    lines = [event_line(e) for e in events if not e.QUIET]
    return code("\n".join(lines)) if lines else None


# ---------------------------------------------------------------- a deployment


def title(d: Deployment) -> str:
    """What the deployment is, in one line of mrkdwn."""
    if d.kind is Kind.RETIRE:
        versions = d.context.versions or []
        what = ", ".join(f"v{v}" for v in versions) if versions else "all versions"
        return f"retire *{d.model}* {what}"
    return f"*{d.model}* v{d.version} → `{d.endpoint}` · {d.strategy}{_waves(d)}"


def _waves(d: Deployment) -> str:
    """The regions of a deployment to several, in the order its waves take them."""
    return f" · {' → '.join(d.regions)}" if len(d.regions) > 1 else ""


def plain_title(d: Deployment) -> str:
    """What the deployment is, in plain text."""
    if d.kind is Kind.RETIRE:
        versions = d.context.versions or []
        what = ", ".join(f"v{v}" for v in versions) if versions else "all versions"
        return f"retire {d.model} {what}"
    regions = f", {' -> '.join(d.regions)}" if len(d.regions) > 1 else ""
    return f"{d.model} v{d.version} -> {d.endpoint} ({d.strategy}{regions})"


def summary_text(d: Deployment) -> str:
    """The plain-text fallback of a deployment's message."""
    return f"{d.id}: {plain_title(d)}: {d.state.value}"


def _progress(d: Deployment) -> str:
    plan = plan_of(d)
    total = len(plan)
    if d.state is DeploymentState.SUCCEEDED:
        return f"`{progress_bar(total, total)}` {total}/{total} steps"
    done = min(d.step, total)
    line = f"`{progress_bar(done, total)}` {done}/{total} steps"
    if d.phase is Phase.COMPENSATING:
        if d.active:
            return f"{line} · undoing what it changed"
        return line
    if d.active and done < total:
        step = plan[done]
        line += f" · now: `{step.name}` ({step.stage.value})"
        seen = d.context.progress.get(step.name)
        if seen is not None and seen.samples is not None and seen.target:
            line += f" · {seen.samples}/{seen.target} samples"
    return line


def _analysis(d: Deployment) -> list[Block]:
    a = d.analysis
    if not a:
        return []
    verdict = str(a.get("verdict") or "none")
    icon = _VERDICT_ICON.get(verdict, ":grey_question:")
    out = [section(f"{icon} *Analysis: {escape(verdict)}* · {escape(str(a.get('summary', '')))}")]
    chart = a.get("text")
    if chart:
        out.append(section(code(str(chart))))
    links = [
        f"<{uri}|{escape(uri.rsplit('/', 1)[-1])}>"
        for uri in a.get("report") or []
        if isinstance(uri, str) and uri.startswith(("http://", "https://"))
    ]
    if links:
        out.append(context("Charts: " + " · ".join(links)))
    return out


def _people(d: Deployment, settings: SlackSettings) -> list[Block]:
    parts = [
        f":heavy_check_mark: Approved by {shown_identity(settings, a.by)} at gate `{a.gate}`"
        for a in d.approvals
    ]
    for e in d.events:
        if isinstance(e, AbortRequested):
            by = shown_identity(settings, e.by)
            why = f": {escape(e.reason)}" if e.reason else ""
            parts.append(f":no_entry: Abort requested by {by}{why}")
    return [context(*parts[-10:])] if parts else []


def _outcome(d: Deployment) -> list[Block]:
    if d.active:
        return []
    line = f"{_STATE_ICON[d.state]} *{_ENDED.get(d.state, d.state.value)}*"
    if d.shown_error:
        line += f": {escape(d.shown_error)}"
    return [section(line)]


def _gate(d: Deployment, settings: SlackSettings, approvers: list[str] | None) -> list[Block]:
    gate = d.waiting_at
    if gate is None:
        return []
    who = (
        "approvers: " + ", ".join(escape(a) for a in approvers)
        if approvers
        else f"anyone but {escape(d.requested_by)}"
    )
    approve = button(
        "Approve",
        APPROVE,
        # The gate and how many approvals it had: a late second click passes no later gate.
        {"id": d.id, "gate": gate, "approvals": len(d.approvals)},
        style="primary",
    )
    abort = button(
        "Abort",
        ABORT,
        {"id": d.id},
        style="danger",
        confirmation=confirm(
            "Abort this deployment?",
            f"`{d.id}`: everything it changed is undone, newest first.",
            "Abort",
        ),
    )
    return [
        section(f":double_vertical_bar: Waiting at gate `{gate}` for an approval ({who})"),
        {"type": "actions", "block_id": f"gate:{d.id}", "elements": [approve, abort]},
    ]


def deployment_message(
    d: Deployment,
    settings: SlackSettings,
    approvers: list[str] | None = None,
    interactive: bool = True,
) -> Message:
    """The one message of a deployment: what it is, how far it got, the analysis, who
    approved, how it ended; with Approve and Abort buttons while it waits at a gate
    (`interactive`). `approvers`: who may approve it, when a list applies."""
    blocks: list[Block] = [
        section(f"{_STATE_ICON[d.state]} {title(d)}"),
        context(
            f"`{d.id}` · requested by {shown_identity(settings, d.requested_by)} · "
            f"*{d.state.value.replace('_', ' ')}* · stage {d.stage.value}"
        ),
        section(_progress(d)),
        *_analysis(d),
        *_people(d, settings),
        *_outcome(d),
    ]
    if interactive:
        blocks += _gate(d, settings, approvers)
    return Message(text=summary_text(d), blocks=blocks[:_BLOCKS_MAX])


def status_message(d: Deployment, settings: SlackSettings) -> Message:
    """`/mmm status ID`: the deployment's message with its latest events, without buttons."""
    base = deployment_message(d, settings, interactive=False)
    lines = [event_line(e) for e in d.events[-_EVENT_LINES:]]
    extra = [section(code("\n".join(lines)))] if lines else []
    if d.waiting_at:
        extra.append(context(f"Waiting at gate `{d.waiting_at}`: `/mmm approve {d.id}`"))
    return Message(text=base.text, blocks=[*base.blocks, *extra][:_BLOCKS_MAX])


def status_list(items: list[Deployment], total: int | None, limit: int) -> Message:
    """`/mmm status`: the newest deployments, active first; `total` is None when the store
    does not count (then a list of `limit` may have more behind it)."""
    if not items:
        return Message(text="no deployments yet", blocks=[section("No deployments yet.")])
    lines = [
        f"{_STATE_ICON[d.state]} `{d.id}` {title(d)} · {d.state.value.replace('_', ' ')}"
        for d in items
    ]
    if total is None:
        more = f" (the newest {len(items)})" if len(items) >= limit else ""
        text = f"{len(items)} deployment(s){more}"
    else:
        more = f" (the newest {len(items)} of {total})" if total > len(items) else ""
        text = f"{total} deployment(s){more}"
    return Message(text=text, blocks=[section(f"*Deployments*{more}"), section("\n".join(lines))])


# ---------------------------------------------------------------- answers to one user


def reply(text: str) -> Message:
    """A one-line answer (refusal, usage, acknowledgement) for the user who asked."""
    return Message(text=text, blocks=[section(escape(text))])


def help_message() -> Message:
    lines = "\n".join(f"`{u}`" for u in USAGE.values())
    return Message(
        text="mmm commands: " + "; ".join(USAGE.values()),
        blocks=[
            section("*mmm: deploy registered model versions safely*\n" + lines),
            context(
                "A deployment started here gets one message in this channel, updated as it "
                "goes; approve or abort from its buttons. Acting needs your Slack user "
                "mapped to an mmm identity (`slack.users` in mmm.yaml)."
            ),
        ],
    )


def abort_prompt(d: Deployment, preview: AbortPreview, nonce: str) -> Message:
    """`/mmm abort ID`: what an abort would undo, and a button that asks once more."""
    undo = "\n".join(f"• {escape(u)}" for u in preview.undo[:15]) or "• nothing changed yet"
    text = f"Abort {d.id} ({summary_text(d)})?"
    yes = button(
        f"Abort {d.id}",
        ABORT_CONFIRMED,
        {"id": d.id, "nonce": nonce},
        style="danger",
        confirmation=confirm("Abort this deployment?", f"`{d.id}` will be undone.", "Abort"),
    )
    return Message(
        text=text,
        blocks=[
            section(f"Abort `{d.id}` ({title(d)})? It would undo, in this order:\n{undo}"),
            {"type": "actions", "elements": [yes]},
        ],
    )


def retire_prompt(model: str, version: str | None, preview: RetirePreview, nonce: str) -> Message:
    """`/mmm retire MODEL [VERSION]`: what a retirement would remove, and a button that asks
    once more (the caller answers a refusal instead)."""
    what = f"{model} v{version}" if version is not None else f"{model} (all versions)"
    sites = "\n".join(
        f"• {s.kind.value} v{s.version}: {escape(s.location)}" for s in preview.sites[:20]
    )
    if len(preview.sites) > 20:
        sites += f"\n• … and {len(preview.sites) - 20} more"
    yes = button(
        f"Retire {what}",
        RETIRE_CONFIRMED,
        {"model": model, "version": version, "nonce": nonce},
        style="danger",
        confirmation=confirm(
            "Retire?", f"{escape(what)} is removed from every place it is used.", "Retire"
        ),
    )
    return Message(
        text=f"Retire {what}?",
        blocks=[
            section(f"Retire *{escape(what)}*? It would remove:\n{sites or '• no usage site'}"),
            {"type": "actions", "elements": [yes]},
        ],
    )
