"""The line at the top of every screen: the views (clickable), who acts, where, the worker."""

from __future__ import annotations

from typing import Protocol

from textual.content import Content
from textual.widgets import Static

# The views, in the order of their number keys: (mode, label).
VIEWS: tuple[tuple[str, str], ...] = (
    ("deployments", "Deployments"),
    ("models", "Models"),
    ("endpoints", "Endpoints"),
    ("usage", "Usage"),
    ("audit", "Audit"),
)


class Context(Protocol):
    """What the top bar shows of the app."""

    @property
    def actor(self) -> str: ...

    @property
    def workspace_name(self) -> str: ...

    @property
    def read_only(self) -> bool: ...

    @property
    def worker_alive(self) -> bool | None: ...

    @property
    def current_mode(self) -> str: ...


class TopBar(Static):
    """Views as tabs (number keys or a click), then actor, workspace, read-only, worker."""

    DEFAULT_CSS = """
    TopBar { height: 1; background: $panel; color: $text; }
    """

    def __init__(self, context: Context) -> None:
        super().__init__()
        self.context = context

    def on_mount(self) -> None:
        self.update_bar()

    def update_bar(self) -> None:
        ctx = self.context
        parts: list[Content] = [Content.from_markup("[b] mmm [/b]")]
        for number, (mode, label) in enumerate(VIEWS, start=1):
            text = f" {number} {label} "
            style = "reverse b" if mode == ctx.current_mode else "dim"
            parts.append(
                Content.from_markup(
                    f"[{style}][@click=app.switch_mode('{mode}')]$text[/][/]", text=text
                )
            )
        parts.append(Content.from_markup("  as [b]$actor[/b] on $ws", actor=ctx.actor,
                                         ws=ctx.workspace_name))  # fmt: skip
        if ctx.read_only:
            parts.append(Content.from_markup("  [b reverse $warning] READ-ONLY [/]"))
        alive = ctx.worker_alive
        if alive is not None:
            worker = "[$success]worker: alive[/]" if alive else "[dim]worker: none (runs here)[/]"
            parts.append(Content.from_markup("  " + worker))
        self.update(Content("").join(parts))
