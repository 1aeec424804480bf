"""A workspace: its home folder and its settings (built by `core.bootstrap`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.spec import Settings


@dataclass(frozen=True)
class Workspace:
    home: Path
    settings: Settings

    @property
    def buckets(self) -> Path:
        return self.home / "buckets"

    @property
    def repo(self) -> Path:
        return self.home / "repo"

    @property
    def scratch(self) -> Path:
        """This process's scratch folder, `<home>/tmp/<host>-<pid>` (created on first use,
        removed at a normal exit; `core.isolation.sweep_scratch` removes a killed one's)."""
        from core.isolation import process_scratch

        return process_scratch(self.home)
