"""JSON Lines files as mmm reads them (golden data, a shadow test's replayed inputs): one
reading, so a line is numbered and padded the same way wherever mmm names it."""

from __future__ import annotations

from pathlib import Path

from core.ports import InvalidInput

# JSON's whitespace but "\n", which ends a line (str.strip() would also take U+00A0, U+2028
# and others, which json.loads refuses: so does the golden test mmm writes for GitHub)
_JSON_SPACE = " \t\r"


def json_lines(path: Path, cannot_read: str = "cannot read") -> list[tuple[int, str]]:
    """The lines of `path` that hold something, numbered from 1 and stripped of JSON's
    whitespace. Raises InvalidInput "<path>: <cannot_read> (<reason>)" where the file cannot
    be read, and "<path>: line N: not UTF-8 text"."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: {cannot_read} ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidInput(f"{path}: line {line}: not UTF-8 text") from None
    # Split on "\n" only: str.splitlines() would also break inside JSON strings at U+2028.
    numbered = enumerate(text.split("\n"), start=1)
    return [(number, kept) for number, line in numbered if (kept := line.strip(_JSON_SPACE))]
