"""The dashboard app: five views as modes, the command palette, and the change feed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import get_current_worker

from core.service import Service
from mmm_tui.actions import Actions
from mmm_tui.formatting import utcnow
from mmm_tui.live import FeedChanged, FeedFailed, WorkerSeen, follow
from mmm_tui.screens.audit import AuditScreen
from mmm_tui.screens.base import MmmScreen, TableView
from mmm_tui.screens.deployments import DeploymentsScreen
from mmm_tui.screens.dialogs import HelpScreen
from mmm_tui.screens.endpoints import EndpointsScreen
from mmm_tui.screens.models import ModelsScreen
from mmm_tui.screens.usage import UsageScreen
from mmm_tui.widgets.top_bar import VIEWS, TopBar


class MmmApp(App[None]):
    """The mmm dashboard over one Service (one actor on one workspace).

    `now` is the clock the ages are measured with; `follow_s` how often the change feed
    is read; `read_only` refuses every action (people who may look but not act)."""

    CSS_PATH = "mmm_tui.tcss"
    TITLE = "mmm"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[None]]]] = {
        "deployments": DeploymentsScreen,
        "models": ModelsScreen,
        "endpoints": EndpointsScreen,
        "usage": UsageScreen,
        "audit": AuditScreen,
    }
    DEFAULT_MODE = "deployments"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(str(n), f"switch_mode('{mode}')", label, show=False)
            for n, (mode, label) in enumerate(VIEWS, start=1)
        ),
        Binding("question_mark", "keys", "Keys"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        service: Service,
        read_only: bool = False,
        now: Callable[[], datetime] = utcnow,
        follow_s: float = 0.25,
        workspace_name: str | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self._read_only = read_only
        self.now = now
        self.follow_s = follow_s
        self._workspace_name = workspace_name or service.ws.home.name
        self._worker_alive: bool | None = None
        self.actions = Actions(self)

    # ------------------------------------------------------------ what the top bar shows

    @property
    def actor(self) -> str:
        return self.service.actor

    @property
    def workspace_name(self) -> str:
        return self._workspace_name

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def worker_alive(self) -> bool | None:
        return self._worker_alive

    def _update_top_bar(self) -> None:
        for bar in self.screen.query(TopBar):
            bar.update_bar()

    # ------------------------------------------------------------ the change feed

    def on_mount(self) -> None:
        if self._read_only:
            self.sub_title = "read-only"
        self.run_worker(self._follow, thread=True, group="feed", exit_on_error=False)

    def _follow(self) -> None:
        worker = get_current_worker()
        follow(self.service, self.post_message, lambda: worker.is_cancelled, self.follow_s)

    def on_feed_changed(self, message: FeedChanged) -> None:
        # Every screen of the current view follows: the one on top, and those under it.
        for screen in self.screen_stack:
            if isinstance(screen, MmmScreen):
                screen.feed_changed(message)

    def on_worker_seen(self, message: WorkerSeen) -> None:
        self._worker_alive = message.alive
        self._update_top_bar()

    def on_feed_failed(self, message: FeedFailed) -> None:
        self.notify(f"cannot follow the change feed: {message.error}", severity="warning")

    # ------------------------------------------------------------ keys and palette

    def action_keys(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for n, (mode, label) in enumerate(VIEWS, start=1):
            yield SystemCommand(f"View: {label}", f"key {n}", partial(self.switch_mode, mode))
        yield SystemCommand(
            "Deploy a model version…", "the form, with the dry-run plan", self.actions.deploy
        )
        for action, title, help_text in (
            ("approve", "Approve the highlighted deployment", "key a: pass its gate"),
            ("abort", "Abort the highlighted deployment", "key x: undo what it changed"),
            ("retire", "Retire the highlighted model version", "key r in Models"),
        ):
            if hasattr(screen, f"action_{action}"):
                yield SystemCommand(title, help_text, partial(self._on_screen, screen, action))
        if isinstance(screen, TableView):
            yield SystemCommand("Filter this table", "key /", screen.action_filter)
            yield SystemCommand("Reload this table", "ctrl+r", screen.reload)
        yield SystemCommand("Keys", "key ?: every key", self.action_keys)
        yield SystemCommand("Theme", "change the colours", self.action_change_theme)
        yield SystemCommand("Quit", "key q", self.action_quit)

    async def _on_screen(self, screen: Screen[object], action: str) -> None:
        await screen.run_action(action)


def views() -> list[type[MmmScreen]]:
    """The screen of each view, in key order (for tests and the README)."""
    return [DeploymentsScreen, ModelsScreen, EndpointsScreen, UsageScreen, AuditScreen]
