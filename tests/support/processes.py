"""Looking at processes from a test (Linux /proc)."""

from __future__ import annotations

from pathlib import Path


def gone(pid: int) -> bool:
    """The process ended (a zombie nobody has reaped yet counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")
