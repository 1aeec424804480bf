"""One deployment: its plan with the current step marked, its history as a live log, the
shadow verdict with its character charts, approvals, and the error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, RichLog, Static

from core.domain import Deployment, DeploymentState, Phase
from core.events import StepStarted
from core.service import ServiceError
from mmm_tui.formatting import (
    STATE_STYLES,
    TONE_STYLES,
    VERDICT_STYLES,
    age,
    state_text,
    steps_done,
    version_text,
)
from mmm_tui.live import FeedChanged
from mmm_tui.screens.base import MmmScreen
from mmm_tui.widgets.top_bar import TopBar


@dataclass(frozen=True)
class DeploymentView:
    """What the screen shows of a deployment, read in one go through the service."""

    deployment: Deployment
    plan: list[dict[str, str]]
    approvers: list[str] | None
    can_approve: bool


class DeploymentScreen(MmmScreen):
    """The detail of one deployment, following the feed while it is open."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("a", "approve", "Approve"),
        Binding("x", "abort", "Abort"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    class Loaded(Message):
        def __init__(self, view: DeploymentView | None, error: str | None = None) -> None:
            super().__init__()
            self.view = view
            self.error = error

    def __init__(self, deployment_id: str) -> None:
        super().__init__()
        self.deployment_id = deployment_id
        self.view: DeploymentView | None = None
        self._events_shown = 0
        self._progress: dict[str, dict[str, Any]] | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(self.mmm)
        yield Static(Text(f" {self.deployment_id}  loading…", style="dim"), id="summary")
        with Horizontal(id="body"):
            with VerticalScroll(id="plan-pane"):
                yield Static(id="plan")
            with Vertical(id="right"):
                yield RichLog(id="events", wrap=True, min_width=20, highlight=False, markup=False)
                with VerticalScroll(id="analysis-pane"):
                    yield Static(id="analysis")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#plan-pane").border_title = "plan"
        self.query_one("#events", RichLog).border_title = "history (live)"
        self.query_one("#analysis-pane").border_title = "shadow analysis"
        self.query_one("#analysis-pane").display = False
        self.load()

    # ------------------------------------------------------------ reading

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def load(self) -> None:
        svc = self.mmm.service
        try:
            d = svc.get(self.deployment_id)
            view = DeploymentView(d, svc.plan(d), svc.approvers_for(d), svc.can_approve(d))
        except ServiceError as exc:
            self.post_message(self.Loaded(None, str(exc)))
            return
        except Exception as exc:
            self.post_message(self.Loaded(None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.Loaded(view))

    def on_deployment_screen_loaded(self, message: Loaded) -> None:
        if message.view is None:
            self.notify(message.error or "cannot read the deployment", severity="error")
            return
        self.view = message.view
        self._show(message.view)
        self.refresh_bindings()

    def feed_changed(self, message: FeedChanged) -> None:
        mine = [e for e in message.entries if e.deployment_id == self.deployment_id]
        if not mine:
            return
        progress = [e.progress for e in mine if e.progress]
        if progress:
            self._progress = progress[-1]
        self.load()

    def action_reload(self) -> None:
        self.load()

    # ------------------------------------------------------------ showing

    def _show(self, view: DeploymentView) -> None:
        d = view.deployment
        self.query_one("#summary", Static).update(self._summary(view))
        self.query_one("#plan", Static).update(plan_text(d, view.plan))
        log = self.query_one("#events", RichLog)
        if len(d.events) < self._events_shown:  # never: a history only grows
            log.clear()
            self._events_shown = 0
        for event in d.events[self._events_shown :]:
            if isinstance(event, StepStarted):
                continue
            line = Text(event.at[11:19] + " ", style="dim")
            line.append(event.line(), style=TONE_STYLES.get(event.tone, ""))
            log.write(line)
        self._events_shown = len(d.events)
        pane = self.query_one("#analysis-pane")
        analysis = analysis_text(d)
        pane.display = analysis is not None
        if analysis is not None:
            self.query_one("#analysis", Static).update(analysis)

    def _summary(self, view: DeploymentView) -> Text:
        d, now = view.deployment, self.mmm.now()
        text = Text(f" {d.id}  ", style="bold")
        if d.kind.value == "retire":
            text.append(f"retire {d.model} {version_text(d.version, d.kind)}")
        else:
            text.append(f"{d.model} {version_text(d.version)} → {d.endpoint}")
            text.append(f"  ({d.strategy}, {', '.join(d.regions)})", style="dim")
        text.append("\n state ")
        text.append_text(state_text(d))
        text.append(f"   stage {d.stage.value}")
        total = len(view.plan)
        if total:
            done = steps_done(d, total)
            current = view.plan[min(d.step, total - 1)]["step"] if d.active else None
            text.append(f"   step {done}/{total}")
            if current:
                text.append(f" {current}", style="bold")
        text.append(f"   requested by {d.requested_by} {age(d.created_at, now)} ago")
        if d.approvals:
            text.append("\n approved ")
            text.append(
                ", ".join(f"{a.by} at {a.gate} ({a.at[11:19]})" for a in d.approvals),
                style="green",
            )
        if d.waiting_at:
            text.append("\n waiting at gate ", style="bold yellow")
            text.append(d.waiting_at, style="bold yellow")
            who = (
                f"approvers: {', '.join(view.approvers)}"
                if view.approvers is not None
                else f"anyone but {d.requested_by}"
            )
            text.append(f"  ({who}; ")
            if view.can_approve:
                text.append("you may approve: press a)", style="bold")
            else:
                text.append(f"{self.mmm.actor} may not approve)", style="dim")
        if self._progress and d.active:
            for step, shown in self._progress.items():
                words = " ".join(f"{k}={v}" for k, v in shown.items() if k != "started")
                text.append(f"\n {step}: {words}", style="cyan")
        error = d.shown_error
        if error:
            text.append("\n error ", style="bold red")
            text.append(error, style="red")
        return text

    # ------------------------------------------------------------ keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        d = self.view.deployment if self.view else None
        if action == "approve":
            return (d is not None and d.state is DeploymentState.WAITING_APPROVAL) or None
        if action == "abort":
            return (d is not None and d.active) or None
        return True

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def action_approve(self) -> None:
        self.mmm.actions.approve(self.deployment_id)

    def action_abort(self) -> None:
        self.mmm.actions.abort(self.deployment_id)


def plan_text(d: Deployment, plan: list[dict[str, str]]) -> Text:
    """The steps, one a line: done ✓ (or ↺ once undone), the current one marked."""
    out = Text()
    undone = d.phase is Phase.COMPENSATING or d.state in (
        DeploymentState.ABORTED,
        DeploymentState.ROLLED_BACK,
        DeploymentState.FAILED,
    )
    done = steps_done(d, len(plan))
    for i, step in enumerate(plan):
        name = step["step"]
        if i < done:
            mark, style = ("↺", "magenta") if undone else ("✓", "green")
        elif i == d.step and d.active:
            waiting = d.state is DeploymentState.WAITING_APPROVAL
            mark = "⏸" if waiting else ("↺" if d.phase is Phase.COMPENSATING else "▶")
            style = "bold " + STATE_STYLES.get(d.state, "")
        elif i == d.step and d.state in (DeploymentState.FAILED, DeploymentState.ROLLED_BACK):
            mark, style = "✗", "bold red"
        else:
            mark, style = "·", "dim"
        if i:
            out.append("\n")
        out.append(f"{mark} ", style=style)
        out.append(name, style=style if mark != "·" else "")
        out.append(f" {step['stage']}", style="dim")
    return out


def analysis_text(d: Deployment) -> Text | None:
    """The shadow verdict and its character charts, as the analysis wrote them."""
    analysis = d.analysis
    if not analysis:
        return None
    verdict = str(analysis.get("verdict") or "none")
    out = Text(f"verdict {verdict.upper()}", style=VERDICT_STYLES.get(verdict, "bold"))
    out.append(f"  on {analysis.get('samples', 0):,} pairs", style="dim")
    body = analysis.get("text") or analysis.get("summary")
    if body:
        out.append("\n" + str(body))
    for uri in analysis.get("report") or []:
        out.append(f"\nchart: {uri}", style="dim")
    return out
