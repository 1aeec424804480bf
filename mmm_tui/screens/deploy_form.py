"""The deploy form: model, version, endpoint, strategy, an optional deployment file; it shows
the dry-run plan (what `mmm deploy --dry-run` prints) before it lets you submit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from core.domain import Deployment
from core.service import ServiceError
from core.spec import StrategyKind
from mmm_tui.formatting import version_text

if TYPE_CHECKING:
    from mmm_tui.app import MmmApp


@dataclass(frozen=True)
class DeployRequest:
    """What the form asks for, as typed (a version is passed on as given)."""

    model: str
    version: str
    endpoint: str | None
    strategy: str | None
    file: Path | None

    def deploy(self, app: MmmApp, dry_run: bool) -> Deployment:
        return app.service.deploy(
            self.model,
            self.version,
            endpoint=self.endpoint,
            strategy=self.strategy,
            file=self.file,
            dry_run=dry_run,
        )


class DeployScreen(ModalScreen[Deployment | None]):
    """Answers the recorded deployment, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("enter", "dry_run", "Dry run"),
        Binding("ctrl+s", "submit", "Deploy"),
    ]

    class Planned(Message):
        def __init__(self, request: DeployRequest, plan: Text | None, error: str | None) -> None:
            super().__init__()
            self.request = request
            self.plan = plan
            self.error = error

    class Submitted(Message):
        def __init__(self, deployment: Deployment | None, error: str | None) -> None:
            super().__init__()
            self.deployment = deployment
            self.error = error

    def __init__(
        self,
        model: str | None = None,
        version: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__()
        self.initial = (model or "", version or "", endpoint or "")
        self.planned: DeployRequest | None = None

    @property
    def mmm(self) -> MmmApp:
        from mmm_tui.app import MmmApp

        return cast(MmmApp, self.app)

    def compose(self) -> ComposeResult:
        model, version, endpoint = self.initial
        strategies = [(k.value, k.value) for k in StrategyKind]
        with Vertical(id="dialog", classes="form"):
            yield Static(Text("Deploy a model version", style="bold"), id="dialog-title")
            with Horizontal(classes="field"):
                yield Label("model")
                yield Input(model, placeholder="registered model name", id="model")
            with Horizontal(classes="field"):
                yield Label("version")
                yield Input(version, placeholder="as the registry names it", id="version")
            with Horizontal(classes="field"):
                yield Label("endpoint")
                yield Input(endpoint, placeholder="(the one it serves on now)", id="endpoint")
            with Horizontal(classes="field"):
                yield Label("strategy")
                yield Select(strategies, prompt="(from the file or defaults)", id="strategy")
            with Horizontal(classes="field"):
                yield Label("file")
                yield Input(placeholder="optional deployment file (YAML)", id="file")
            with VerticalScroll(id="dialog-body"):
                yield Static(
                    Text("Enter (dry run) shows the plan; then ctrl+s deploys it.", style="dim"),
                    id="plan",
                )
            with Horizontal(id="dialog-buttons"):
                yield Button("Dry run (enter)", id="dry-run", variant="primary")
                yield Button("Deploy (^s)", id="submit", variant="success", disabled=True)
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        first_empty = next(
            (i for i in self.query(Input) if not i.value), self.query_one("#model", Input)
        )
        first_empty.focus()

    # ------------------------------------------------------------ the request

    def request(self) -> DeployRequest:
        def value(name: str) -> str:
            return self.query_one(f"#{name}", Input).value.strip()

        strategy = self.query_one("#strategy", Select).value
        file = value("file")
        return DeployRequest(
            model=value("model"),
            version=value("version"),
            endpoint=value("endpoint") or None,
            strategy=strategy if isinstance(strategy, str) else None,
            file=Path(file).expanduser() if file else None,
        )

    def on_input_changed(self, event: Input.Changed) -> None:
        self._stale()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_dry_run()

    def on_select_changed(self, event: Select.Changed) -> None:
        self._stale()

    def _stale(self) -> None:
        # What was planned no longer matches the form: plan again before submitting.
        if self.planned is not None and self.planned != self.request():
            self.planned = None
            self.query_one("#submit", Button).disabled = True

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "dry-run":
            self.action_dry_run()
        elif event.button.id == "submit":
            self.action_submit()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    # ------------------------------------------------------------ dry run, then submit

    def action_dry_run(self) -> None:
        request = self.request()
        if not request.model or not request.version:
            self.notify("name a model and a version", severity="warning")
            return
        self.query_one("#plan", Static).update(Text("planning…", style="dim"))
        self._plan(request)

    @work(thread=True, exclusive=True, group="deploy-form", exit_on_error=False)
    def _plan(self, request: DeployRequest) -> None:
        try:
            d = request.deploy(self.mmm, dry_run=True)
            plan = plan_preview(d, self.mmm.service.plan(d))
        except ServiceError as exc:
            self.post_message(self.Planned(request, None, str(exc)))
            return
        except Exception as exc:
            self.post_message(self.Planned(request, None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.Planned(request, plan, None))

    def on_deploy_screen_planned(self, message: Planned) -> None:
        plan = self.query_one("#plan", Static)
        if message.plan is None:
            plan.update(Text(message.error or "refused", style="red"))
            self.notify(message.error or "refused", title="Refused", severity="error")
            return
        plan.update(message.plan)
        if message.request == self.request():
            self.planned = message.request
            self.query_one("#submit", Button).disabled = False

    def action_submit(self) -> None:
        if self.planned is None or self.planned != self.request():
            self.notify("run the dry run first (enter): it shows what will happen", timeout=4)
            return
        if self.mmm.read_only:
            self.mmm.actions.refuse_read_only("deploy")
            return
        self.query_one("#submit", Button).disabled = True
        self._submit(self.planned)

    @work(thread=True, exclusive=True, group="deploy-form", exit_on_error=False)
    def _submit(self, request: DeployRequest) -> None:
        try:
            d = request.deploy(self.mmm, dry_run=False)
        except ServiceError as exc:
            self.post_message(self.Submitted(None, str(exc)))
            return
        except Exception as exc:
            self.post_message(self.Submitted(None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.Submitted(d, None))

    def on_deploy_screen_submitted(self, message: Submitted) -> None:
        if message.deployment is None:
            self.notify(message.error or "refused", title="Refused", severity="error")
            self.query_one("#submit", Button).disabled = False
            return
        self.dismiss(message.deployment)


def plan_preview(d: Deployment, plan: list[dict[str, str]]) -> Text:
    """What the dry run says: where it goes, how, and every step it will take."""
    out = Text(f"{d.model} {version_text(d.version)} → {d.endpoint}", style="bold")
    out.append(f"  {d.strategy}, regions {', '.join(d.regions)}", style="dim")
    if d.spec.gates:
        out.append(f"\ngates: {', '.join(str(g) for g in d.spec.gates)}", style="yellow")
    for i, step in enumerate(plan, start=1):
        out.append(f"\n{i:>2}. ")
        out.append(step["step"], style="bold" if step["action"] == "gate" else "")
        out.append(f"  ({step['stage']})", style="dim")
    return out
