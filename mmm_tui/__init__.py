"""The Textual dashboard of mmm (`mmm tui`): a front end over core.service.

`run(home, actor, read_only)` opens it on a workspace, as the CLI would (`--home`, `--as`).
Textual loads only when the dashboard runs, so the CLI starts fast.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

__all__ = ["run"]


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def run(home: Path | None = None, actor: str | None = None, read_only: bool = False) -> None:
    """Open the dashboard on the workspace at `home` (default: $MMM_HOME, else ./.mmm) as
    `actor` (default: $MMM_USER, else the login name) until the user quits. `read_only`
    refuses every action. Raises core.bootstrap.WorkspaceError when there is no workspace."""
    from core.bootstrap import build_service
    from mmm_tui.app import MmmApp

    home = home or Path(os.environ.get("MMM_HOME") or ".mmm")
    who = actor or os.environ.get("MMM_USER") or _login()
    service = build_service(home, who)
    try:
        MmmApp(service, read_only=read_only, workspace_name=_shown_home(home)).run()
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
