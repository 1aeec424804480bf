"""Folders as buckets: `local://<bucket>/<key>` is `<root>/<bucket>/<key>` on disk."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from core.ports import InvalidInput, NotFound

SCHEME = "local://"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def uri(self, bucket: str, key: str) -> str:
        return f"{SCHEME}{bucket}/{key.lstrip('/')}"

    def locate(self, uri: str) -> tuple[str, str] | None:
        bucket, sep, key = uri.removeprefix(SCHEME).partition("/")
        return (bucket, key) if uri.startswith(SCHEME) and bucket and sep and key else None

    def local_path(self, uri: str) -> Path:
        if not uri.startswith(SCHEME):
            raise InvalidInput(f"{uri}: not a local artifact URI (expected {SCHEME}<bucket>/<key>)")
        rel = uri.removeprefix(SCHEME)
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root.resolve()) or ".." in Path(rel).parts:
            raise InvalidInput(f"{uri}: points outside the buckets")
        return path

    def code_uri(self, uri: str) -> str:
        return str(self.local_path(uri))

    def _write(self, src: Path, dest: Path) -> None:
        # Copy to a temporary name then rename: a crash never leaves half a file under the key.
        # The temporary name is unique: two workers may stage the same version at once.
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
        os.close(fd)
        try:
            shutil.copyfile(src, name)
            os.replace(name, dest)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def put(self, bucket: str, key: str, src: Path) -> str:
        uri = self.uri(bucket, key)
        dest = self.local_path(uri)
        if not (dest.exists() and sha256_file(dest) == sha256_file(src)):
            self._write(src, dest)
        return uri

    def copy(self, src_uri: str, bucket: str, key: str) -> str:
        src = self.local_path(src_uri)
        if not src.exists():
            raise NotFound(f"{src_uri}: no such artifact")
        return self.put(bucket, key, src)

    def get(self, uri: str, dest: Path) -> Path:
        src = self.local_path(uri)
        if not src.exists():
            raise NotFound(f"{uri}: no such artifact")
        target = dest / src.name if dest.is_dir() else dest
        self._write(src, target)
        return target

    def exists(self, uri: str) -> bool:
        return self.local_path(uri).is_file()

    def delete(self, uri: str) -> bool:
        path = self.local_path(uri)
        if not path.exists():
            return False
        path.unlink()
        # drop folders left empty, up to the bucket
        parent = path.parent
        while (
            parent != self.root and parent.is_relative_to(self.root) and not any(parent.iterdir())
        ):
            parent.rmdir()
            parent = parent.parent
        return True

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        base = self.root / bucket
        if not base.exists():
            return []
        out = []
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(".partial"):
                key = path.relative_to(base).as_posix()
                if key.startswith(prefix):
                    out.append(self.uri(bucket, key))
        return out
