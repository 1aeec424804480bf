"""The Textual dashboard of mmm (`mmm tui`): a front end over core.service.

`run(service, read_only)` opens it on the service the CLI builds (`--home`, `--as`).
Textual loads only when the dashboard runs, so the CLI starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.service import Service

__all__ = ["run"]


def run(service: Service, read_only: bool = False) -> None:
    """Open the dashboard on `service` (its workspace, acting as its actor, built by the
    CLI from `--home` and `--as`) until the user quits, then close the service.
    `read_only` refuses every action."""
    from mmm_tui.app import MmmApp

    try:
        MmmApp(service, read_only=read_only, workspace_name=_shown_home(service.ws.home)).run()
    finally:
        service.close()


def _shown_home(home: Path) -> str:
    # `.mmm` says little: name the folder it is in too.
    resolved = home.resolve()
    return (
        f"{resolved.parent.name}/{resolved.name}"
        if resolved.name.startswith(".")
        else resolved.name
    )
