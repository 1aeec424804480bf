"""Captured production/shadow pairs as JSON Lines in the `captures` bucket.

Layout: `<buckets>/captures/<endpoint>/<shadow variant>/part-00001.jsonl`, at
most `max_lines` lines a part. Each writer claims fresh part files of its own
(exclusive create), so processes capturing the same endpoint never share a
file, and the lines of one call go out in one unbuffered `write` before `write`
returns, so a stopped process loses no line it accepted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.ports import CapturedPair, PortError

log = logging.getLogger(__name__)

CAPTURES_BUCKET = "captures"
MAX_LINES = 10_000
_PART = re.compile(r"^part-(\d+)\.jsonl$")


def captures_root(home: Path) -> Path:
    return home / "buckets" / CAPTURES_BUCKET


def capture_dir(root: Path, endpoint: str, shadow_variant: str) -> Path:
    return root / endpoint / shadow_variant


def to_json(value: Any) -> Any:
    """`json.dumps` default: numpy scalars and arrays become plain numbers and lists."""
    for attr in ("tolist", "item"):
        method = getattr(value, attr, None)
        if callable(method):
            return method()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_ENCODE = json.JSONEncoder(default=to_json, separators=(",", ":")).encode  # one, not one a pair


def encode_pair(pair: CapturedPair, region: str) -> bytes:
    doc = pair.model_dump(mode="python")
    doc["region"] = region
    return (_ENCODE(doc) + "\n").encode()


def _parts(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _PART.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_captures(
    root: Path, endpoint: str, shadow_variant: str, region: str | None = None
) -> Iterator[CapturedPair]:
    """Every pair captured for the endpoint's shadow, part by part, in the order written."""
    for _, path in _parts(capture_dir(root, endpoint, shadow_variant)):
        with path.open("rb") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.endswith(b"\n"):
                    break  # a line still being written by another process
                try:
                    doc = json.loads(line)
                    if region is not None and doc.get("region", region) != region:
                        continue
                    yield CapturedPair.model_validate(doc)
                except (ValueError, ValidationError) as exc:
                    raise PortError(f"{path}:{number}: not a captured pair ({exc})") from None


class _Part:
    """An open part file this writer claimed."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        number = max((n for n, _ in _parts(folder)), default=0) + 1
        while True:
            path = folder / f"part-{number:05d}.jsonl"
            try:
                self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            except FileExistsError:
                number += 1
                continue
            break
        self.path = path
        self.lines = 0

    def write(self, lines: list[bytes]) -> None:
        """Whole lines in one `write` (a batch's pairs in one system call)."""
        view = memoryview(b"".join(lines))
        while view:
            view = view[os.write(self.fd, view) :]
        self.lines += len(lines)

    def close(self) -> None:
        os.close(self.fd)


Written = Callable[[str, str, str, int], None]  # region, endpoint, shadow variant, n


class CaptureWriter:
    """Appends pairs from any thread, in the caller's thread: the lines of a call in one `write`.

    Callers are mirror workers and replays, never a caller's request, so the
    few microseconds of a file append are spent off the request path.
    """

    def __init__(
        self,
        root: Path,
        max_lines: int = MAX_LINES,
        on_written: Written | None = None,
        on_failed: Written | None = None,
    ) -> None:
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        self.root = root
        self.max_lines = max_lines
        self._on_written = on_written
        self._on_failed = on_failed
        self._open: dict[tuple[str, str], _Part] = {}
        self._lock = threading.Lock()
        self._closed = False

    def write(
        self, region: str, endpoint: str, shadow_variant: str, pairs: list[CapturedPair]
    ) -> int:
        """Append `pairs`; returns how many were written (failures are logged and counted)."""
        key = (endpoint, shadow_variant)
        lines: list[bytes] = []
        for pair in pairs:
            try:
                lines.append(encode_pair(pair, region))
            except (TypeError, ValueError) as exc:
                log.error("capture of %s/%s: pair %s skipped: %s", *key, pair.request_id, exc)
        written = 0
        with self._lock:
            if self._closed:
                raise PortError(f"{self.root}: the capture writer is closed")
            while written < len(lines):
                try:
                    part = self._part(key)
                    chunk = lines[written : written + self.max_lines - part.lines]
                    part.write(chunk)
                except OSError as exc:
                    # the rest of these pairs count as lost; the next write claims a new part
                    log.error("capture of %s/%s failed: %s", *key, exc)
                    failed_part = self._open.pop(key, None)
                    if failed_part is not None:
                        failed_part.close()
                    break
                written += len(chunk)
        failed = len(pairs) - written
        if self._on_written is not None and written:
            self._on_written(region, endpoint, shadow_variant, written)
        if self._on_failed is not None and failed:
            self._on_failed(region, endpoint, shadow_variant, failed)
        return written

    def close(self) -> None:
        """Release the files (every line accepted is already written)."""
        with self._lock:
            self._closed = True
            for part in self._open.values():
                part.close()
            self._open.clear()

    def _part(self, key: tuple[str, str]) -> _Part:
        part = self._open.get(key)
        if part is None or part.lines >= self.max_lines:
            if part is not None:
                part.close()
            part = self._open[key] = _Part(capture_dir(self.root, *key))
        return part
