"""Folders as buckets: `local://<bucket>/<key>` is `<root>/<bucket>/<key>` on disk.

A model's data is one file or, for a model only its serving container loads (a Hugging Face
folder), a folder: as on S3 (`core.adapters.aws.s3`), `put` of a folder returns a URI ending
in `/`, and `copy`, `get`, `exists` and `delete` of such a URI act on the whole folder;
`list` names the files in it, as S3 lists a prefix's objects.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from core.ports import InvalidInput, NotFound

SCHEME = "local://"
_PARTIAL = ".partial"  # suffix of what is being written (or set aside): never listed


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_files(root: Path) -> list[str]:
    """The files of folder `root`, as relative POSIX paths in sorted order.

    A link to a file counts as that file (a Hugging Face cache links its blobs so); a link to
    a folder is refused (InvalidInput), since links may loop. An unreadable folder or a broken
    link is InvalidInput too: a folder artifact is all its files or nothing."""

    def unreadable(exc: OSError) -> None:
        raise InvalidInput(f"{exc.filename}: cannot read ({exc.strerror})")

    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        here = Path(dirpath)
        for name in dirnames:
            if (here / name).is_symlink():
                raise InvalidInput(f"{here / name}: a link to a folder (copy the folder instead)")
        for name in filenames:
            if not (here / name).is_file():
                raise InvalidInput(f"{here / name}: not a regular file (a broken link?)")
            found.append((here / name).relative_to(root).as_posix())
    return sorted(found)


def sha256_tree(root: Path) -> str:
    """The SHA-256 of a folder: over each file's relative path and SHA-256, in path order.
    The same files at the same places give the same digest wherever the folder lies."""
    digest = hashlib.sha256()
    for rel in tree_files(root):
        # "\0" cannot occur in a path, and a file's digest has a fixed length
        digest.update(f"{rel}\0{sha256_file(root / rel)}\0".encode())
    return digest.hexdigest()


def copy_tree(src: Path, dest: Path) -> None:
    """Copy the files of folder `src` (`tree_files`: links followed) under folder `dest`."""
    for rel in tree_files(src):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)


def _same_tree(a: Path, b: Path) -> bool:
    """Both folders hold the same files with the same bytes (sizes first: no hashing of a
    folder that differs already in them)."""
    files = tree_files(a)
    if files != tree_files(b):
        return False
    if any((a / rel).stat().st_size != (b / rel).stat().st_size for rel in files):
        return False
    return sha256_tree(a) == sha256_tree(b)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


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

    def _found(self, uri: str) -> Path:
        """The file, or for a URI ending in `/` the folder, that `uri` names; NotFound when
        there is none of that kind (a folder's URI without its `/` names no file)."""
        path = self.local_path(uri)
        if path.is_dir() if uri.endswith("/") else path.is_file():
            return path
        raise NotFound(f"{uri}: no such artifact")

    def _write(self, src: Path, dest: Path) -> None:
        # Copy to a temporary name then rename: a crash never leaves half a file under the key.
        # The temporary name is unique: two workers may stage the same version at once.
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=_PARTIAL)
        os.close(fd)
        try:
            shutil.copyfile(src, name)
            os.replace(name, dest)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def _write_tree(self, src: Path, dest: Path) -> None:
        # A folder is copied whole into a temporary folder beside `dest`, then renamed: a crash
        # never leaves half a model under the key. A folder already there is set aside first
        # (a rename cannot replace a folder that holds files) and removed afterwards.
        dest.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=_PARTIAL))
        aside = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.old{_PARTIAL}")
        try:
            copy_tree(src, staged)
            if dest.exists() or dest.is_symlink():
                os.replace(dest, aside)
            try:
                os.replace(staged, dest)
            except OSError:
                if dest.is_dir() and _same_tree(dest, src):
                    return  # another writer put the same folder there in between
                if aside.exists() and not dest.exists():
                    os.replace(aside, dest)  # put back what was there
                raise
        finally:
            _remove(staged)
            _remove(aside)

    def put(self, bucket: str, key: str, src: Path) -> str:
        if src.is_dir():
            return self._put_tree(bucket, key, src)
        uri = self.uri(bucket, key)
        dest = self.local_path(uri)
        if not (dest.is_file() and sha256_file(dest) == sha256_file(src)):
            self._write(src, dest)
        return uri

    def _put_tree(self, bucket: str, key: str, src: Path) -> str:
        base = key.strip("/")
        if not base:
            raise InvalidInput(f"{src}: a folder needs a key to go under in bucket {bucket}")
        if not tree_files(src):
            raise InvalidInput(f"{src}: an empty folder (no files to store)")
        uri = self.uri(bucket, base + "/")  # a folder's URI ends in `/`, as on S3
        dest = self.local_path(uri)
        if not (dest.is_dir() and _same_tree(dest, src)):
            self._write_tree(src, dest)
        return uri

    def copy(self, src_uri: str, bucket: str, key: str) -> str:
        return self.put(bucket, key, self._found(src_uri))

    def get(self, uri: str, dest: Path) -> Path:
        """The file, or folder, at `dest` (or in it, by its own name, when `dest` is a folder)."""
        src = self._found(uri)
        target = dest / src.name if dest.is_dir() else dest
        if src.is_dir():
            self._write_tree(src, target)
        else:
            self._write(src, target)
        return target

    def exists(self, uri: str) -> bool:
        try:
            self._found(uri)
        except NotFound:
            return False
        return True

    def delete(self, uri: str) -> bool:
        try:
            path = self._found(uri)
        except NotFound:
            return False
        _remove(path)
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
            rel = path.relative_to(base)
            # nothing being written or set aside, nor any file inside such a folder
            if path.is_file() and not any(part.endswith(_PARTIAL) for part in rel.parts):
                key = rel.as_posix()
                if key.startswith(prefix):
                    out.append(self.uri(bucket, key))
        return out
