"""Deploy, approve, abort and retire from the dashboard: only through the core service.

Each action reads what it would do (a preview, the plan) in a thread, asks for a
confirmation that names it, then calls the service in a thread. A refusal (four-eyes,
a busy endpoint, bad input, no permission) is a notification; the screen stays as it
was. A recorded deployment is carried out like the CLI does it: by a live worker when
one is alive, else here, in a thread, until it ends or waits for a person.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.worker import get_current_worker

from core.domain import Deployment, DeploymentState
from core.preview import AbortPreview, RetirePreview
from core.service import Service, ServiceError
from mmm_tui.formatting import percent, version_text

if TYPE_CHECKING:
    from mmm_tui.app import MmmApp

RUN_SLICE_S = 1.0  # a run here gives the app a chance to quit this often


class Actions:
    """The dashboard's actions, for any screen or the command palette."""

    def __init__(self, app: MmmApp) -> None:
        self.app = app

    @property
    def svc(self) -> Service:
        return self.app.service

    # ------------------------------------------------------------ plumbing

    def refuse(self, message: str) -> None:
        """A refusal, as a notification (from the event loop)."""
        self.app.notify(message, title="Refused", severity="error", timeout=8)

    def refuse_read_only(self, verb: str) -> None:
        self.app.notify(
            f"read-only dashboard: you may look but not {verb} (opened with --read-only)",
            title="Refused",
            severity="warning",
            timeout=6,
        )

    def _in_thread(self, name: str, work: Callable[[], None]) -> None:
        """Run `work` in a thread worker; any error it lets out becomes a refusal."""

        def guarded() -> None:
            try:
                work()
            except ServiceError as exc:
                self.app.call_from_thread(self.refuse, str(exc))
            except Exception as exc:
                self.app.call_from_thread(
                    self.refuse, f"{name} failed: {type(exc).__name__}: {exc}"
                )

        self.app.run_worker(guarded, thread=True, group=f"action-{name}", exit_on_error=False)

    def _confirm(
        self, title: str, body: Text, confirm: str, then: Callable[[], None], danger: bool = False
    ) -> None:
        """From a thread: ask on screen, and run `then` in a thread if confirmed."""
        from mmm_tui.screens.dialogs import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self._in_thread(confirm.lower(), then)

        self.app.call_from_thread(
            self.app.push_screen, ConfirmScreen(title, body, confirm, danger), answered
        )

    def _told(self, message: str, severity: str = "information") -> None:
        self.app.call_from_thread(partial(self.app.notify, message, severity=severity))  # type: ignore[arg-type]

    # ------------------------------------------------------------ deploy

    def deploy(
        self, model: str | None = None, version: str | None = None, endpoint: str | None = None
    ) -> None:
        """The deploy form; a submitted deployment is then carried out."""
        if self.app.read_only:
            self.refuse_read_only("deploy")
            return
        from mmm_tui.screens.deploy_form import DeployScreen

        def submitted(d: Deployment | None) -> None:
            if d is not None:
                self.app.notify(
                    f"{d.id} queued: {d.model} {version_text(d.version)} → {d.endpoint} "
                    f"({d.strategy})"
                )
                self.carry_out(d)

        self.app.push_screen(DeployScreen(model, version, endpoint), submitted)

    # ------------------------------------------------------------ approve

    def approve(self, ref: str) -> None:
        if self.app.read_only:
            self.refuse_read_only("approve")
            return

        def prepare() -> None:
            d = self.svc.get(ref)
            if d.state is not DeploymentState.WAITING_APPROVAL:
                raise_refusal(f"{d.id} is not waiting for approval (it is {d.state.value})")
            body = approve_text(d, self.svc.plan(d), self.app.actor)

            def approve() -> None:
                # Only the gate the confirmation named, as it was then: if someone passed it
                # meanwhile, this is refused rather than passing the gate after it.
                approved = self.svc.approve(d.id, d.waiting_at, len(d.approvals))
                self._told(f"{d.id} approved at gate {d.waiting_at} by {self.app.actor}")
                self._carry_out_here(approved)

            self._confirm(f"Approve {d.id}?", body, "Approve", approve)

        self._in_thread("approve", prepare)

    # ------------------------------------------------------------ abort

    def abort(self, ref: str) -> None:
        if self.app.read_only:
            self.refuse_read_only("abort")
            return

        def prepare() -> None:
            d = self.svc.get(ref)
            preview = self.svc.preview_abort(d.id)
            if not preview.possible:
                raise_refusal(f"cannot abort {d.id}: {preview.reason}")
            body = abort_text(d, preview)

            def abort() -> None:
                aborted = self.svc.abort(
                    d.id, reason=f"aborted from the dashboard by {self.app.actor}"
                )
                self._told(f"{d.id}: abort requested; undoing what it changed")
                self._carry_out_here(aborted)

            self._confirm(f"Abort {d.id}?", body, "Abort", abort, danger=True)

        self._in_thread("abort", prepare)

    # ------------------------------------------------------------ retire

    def retire(self, model: str, version: str | None) -> None:
        if self.app.read_only:
            self.refuse_read_only("retire")
            return

        def prepare() -> None:
            preview = self.svc.preview_retire(model, version)
            if preview.refused:
                raise_refusal(preview.refused)
            body = retire_text(model, version, preview)
            what = f"{model} {version_text(version)}" if version else f"every version of {model}"

            def retire() -> None:
                d = self.svc.retire(model, version)
                self._told(f"{d.id} queued: retire {what}")
                self._carry_out_here(d)

            self._confirm(f"Retire {what}?", body, "Retire", retire, danger=True)

        self._in_thread("retire", prepare)

    # ------------------------------------------------------------ carrying out

    def carry_out(self, d: Deployment) -> None:
        """Have `d` carried out (from the event loop)."""
        self._in_thread("run", partial(self._carry_out_here, d))

    def _carry_out_here(self, d: Deployment) -> None:
        """In a thread: leave `d` to a live worker, or run it here until it ends or waits for
        a person, in slices so that quitting is never held up for long (the next worker
        resumes whatever is left)."""
        worker = get_current_worker()
        while d.active and not settled(d) and not worker.is_cancelled:
            if self.svc.worker_running():
                return
            d = self.svc.run(d, timeout_s=RUN_SLICE_S)
        if not d.active:
            severity = "information" if d.state is DeploymentState.SUCCEEDED else "error"
            ended = f"{d.id} {d.state.value}" + (f": {d.shown_error}" if d.shown_error else "")
            self._told(ended, severity)
        elif d.waiting_at:
            self._told(f"{d.id} waits at gate {d.waiting_at} for an approval", "warning")


class _Refusal(ServiceError):
    """A refusal the dashboard itself words (the action would change nothing)."""


def raise_refusal(message: str) -> None:
    raise _Refusal(message)


def settled(d: Deployment) -> bool:
    """Ended, or waiting for a person: nothing more happens without someone acting."""
    return not d.active or (d.state is DeploymentState.WAITING_APPROVAL and not d.pending)


# ---------------------------------------------------------------- what each action will do


def _what(d: Deployment) -> str:
    if d.kind.value == "retire":
        return f"retire {d.model} {version_text(d.version, d.kind)}"
    return f"{d.model} {version_text(d.version)} → {d.endpoint} ({d.strategy})"


def approve_text(d: Deployment, plan: list[dict[str, str]], actor: str) -> Text:
    """The gate passed, as whom, and the steps that then run (up to the next gate)."""
    out = Text(f"{d.id}: {_what(d)}\n", style="bold")
    out.append(f"passes gate {d.waiting_at} as {actor} (requested by {d.requested_by}).\n")
    after = []
    for step in plan[d.step + 1 :]:
        if step["action"] == "gate":
            after.append(f"then waits again at {step['step']}")
            break
        after.append(step["step"])
    if after:
        out.append("Then: ", style="dim")
        out.append(", ".join(after))
    return out


def _weights(weights: dict[str, float] | None) -> str:
    if weights is None:
        return "(no endpoint)"
    return ", ".join(f"{name} {percent(w)}" for name, w in weights.items()) or "(no variants)"


def abort_text(d: Deployment, preview: AbortPreview) -> Text:
    """Which endpoint goes back to what, and every undo step, newest first."""
    state = d.state.value.replace("_", " ")
    out = Text(f"{d.id}: {_what(d)}, now {state} at {d.stage.value}\n", style="bold")
    if preview.endpoints:
        out.append("Endpoints afterwards:\n")
        for e in preview.endpoints:
            out.append(f"  {e.name} ({e.region}): ", style="bold")
            out.append(_weights(e.now), style="dim")
            out.append("  →  ")
            out.append("deleted" if e.after is None else _weights(e.after), style="bold")
            if e.shadow_now != e.shadow_after:
                out.append(f"  (shadow {e.shadow_now or 'none'} → {e.shadow_after or 'none'})")
            out.append("\n")
    else:
        out.append("No endpoint has been changed yet.\n")
    if preview.undo:
        out.append("Undone, newest first:\n")
        for line in preview.undo:
            out.append(f"  • {line}\n")
    else:
        out.append("Nothing to undo: it stops here.\n")
    if preview.in_flight:
        out.append(
            f"In flight: {preview.in_flight} (undone when its result arrives)\n", style="yellow"
        )
    return out


def retire_text(model: str, version: str | None, preview: RetirePreview) -> Text:
    """Every usage site the retirement removes."""
    what = f"{model} {version_text(version)}" if version else f"every version of {model}"
    out = Text(f"Retire {what}: removes {len(preview.sites)} usage site(s)\n", style="bold")
    for s in preview.sites:
        where = f" ({s.region})" if s.region else ""
        out.append(f"  • {s.kind.value:<9} {version_text(s.version)}  {s.location}{where}\n")
    if not preview.sites:
        out.append("  (it is used nowhere: only its registry status changes)\n", style="dim")
    return out
