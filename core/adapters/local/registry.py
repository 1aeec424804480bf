"""The local model registry: versions in SQLite, files beside it, in the workspace.

Status changes are appended to a history table, once per real change, so the
registry can show what mmm did to it (and a resumed worker adds nothing twice).

A version's artifact is a file, `files/<name>/<version>/model<suffix>`, or, for a
model only its serving container loads (a Hugging Face folder), a folder,
`files/<name>/<version>/model/`, whose sha256 is `sha256_tree`'s.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

from core.adapters.local.artifacts import copy_tree, sha256_file, sha256_tree
from core.container_models import artifact_format, check_present
from core.domain import Library, ModelVersion, VersionStatus, iso, utcnow
from core.ports import InvalidInput, NotFound
from core.sqlite_db import Migrations, open_db, write_transaction

migrations = Migrations("mmm-registry")


@migrations()
def m001_versions(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE versions (name TEXT NOT NULL, version INTEGER NOT NULL, "
        "body TEXT NOT NULL, PRIMARY KEY (name, version))"
    )
    db.execute(
        "CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "name TEXT, version INTEGER, at TEXT, actor TEXT, status_from TEXT, status_to TEXT)"
    )


def _number(version: str) -> int | None:
    """The local registry numbers its versions 1, 2, 3: the number `version` spells exactly
    ("03" is not version 3), None for any other name (which no version here has)."""
    return int(version) if version.isdigit() and str(int(version)) == version else None


class LocalRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()

    @property
    def db(self) -> sqlite3.Connection:
        # one connection per thread: the worker and the gateway share this adapter
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = open_db(self.root / "registry.db", migrations)
        return db

    def register(
        self,
        name: str,
        artifact: Path,
        library: Library,
        golden: Path | None,
        owner: str | None,
        actor: str,
    ) -> ModelVersion:
        check_present(artifact, library)
        if golden is not None and not golden.is_file():
            raise InvalidInput(f"{golden}: no such file")
        fmt = artifact_format(artifact, library)
        with write_transaction(self.db):
            row = self.db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM versions WHERE name = ?", [name]
            ).fetchone()
            version = int(row[0]) + 1
            folder = self.root / "files" / name / str(version)
            if folder.exists():
                shutil.rmtree(folder)  # left by a registration that crashed before its row
            folder.mkdir(parents=True)
            dest = _copy_artifact(artifact, folder)
            golden_dest = None
            if golden is not None:
                golden_dest = folder / "golden.jsonl"
                shutil.copyfile(golden, golden_dest)
            mv = ModelVersion(
                name=name,
                version=str(version),
                library=library,
                format=fmt,
                artifact=str(dest.relative_to(self.root)),
                golden=str(golden_dest.relative_to(self.root)) if golden_dest else None,
                owner=owner,
                registry_ref=f"local:{name}/{version}",
                created_by=actor,
                created_at=iso(utcnow()),
                sha256=sha256_tree(dest) if dest.is_dir() else sha256_file(dest),
            )
            self.db.execute(
                "INSERT INTO versions (name, version, body) VALUES (?, ?, ?)",
                [name, version, mv.model_dump_json()],
            )
        return mv

    def get(self, name: str, version: str) -> ModelVersion:
        number = _number(version)
        row = self.db.execute(
            "SELECT body FROM versions WHERE name = ? AND version = ?", [name, number]
        ).fetchone()
        if row is None:
            known = self.db.execute(
                "SELECT MAX(version) FROM versions WHERE name = ?", [name]
            ).fetchone()[0]
            if known is None:
                raise NotFound(f"model {name!r} is not registered")
            raise NotFound(f"model {name!r} has no version {version} (latest is {known})")
        return ModelVersion.model_validate_json(row[0])

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        sql = "SELECT body FROM versions"
        params: list[str] = []
        if name is not None:
            sql += " WHERE name = ?"
            params.append(name)
        rows = self.db.execute(sql + " ORDER BY name, version", params).fetchall()
        return [ModelVersion.model_validate_json(r[0]) for r in rows]

    def set_status(
        self,
        name: str,
        version: str,
        status: VersionStatus,
        actor: str,
        *,
        endpoint: str | None = None,  # the local registry keeps no endpoint tags
    ) -> VersionStatus:
        with write_transaction(self.db):
            mv = self.get(name, version)
            if mv.status is status:
                return status
            updated = mv.model_copy(update={"status": status})
            self.db.execute(
                "UPDATE versions SET body = ? WHERE name = ? AND version = ?",
                [updated.model_dump_json(), name, _number(version)],
            )
            self.db.execute(
                "INSERT INTO history (name, version, at, actor, status_from, status_to) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [name, _number(version), iso(utcnow()), actor, mv.status.value, status.value],
            )
        return mv.status

    def history(self, name: str, version: str | None = None) -> list[dict[str, object]]:
        sql = "SELECT name, version, at, actor, status_from, status_to FROM history WHERE name = ?"
        params: list[object] = [name]
        if version is not None:
            sql += " AND version = ?"
            params.append(_number(version))
        cols = ["name", "version", "at", "actor", "from", "to"]
        return [
            dict(zip(cols, r, strict=True)) for r in self.db.execute(sql + " ORDER BY id", params)
        ]

    def fetch(self, mv: ModelVersion, what: str, dest: Path) -> Path:
        rel = mv.artifact if what == "artifact" else mv.golden
        if rel is None:
            raise NotFound(f"{mv.name} v{mv.version} has no {what}")
        src = self.root / rel
        if not (src.is_file() or src.is_dir()):
            raise NotFound(f"{mv.name} v{mv.version}: {what} file is missing from the registry")
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / src.name
        if src.is_dir():  # a container model's folder comes back whole, as it was registered
            if target.is_dir():
                shutil.rmtree(target)  # fetched here before: no file of that copy may stay
            copy_tree(src, target)
        else:
            shutil.copyfile(src, target)
        return target


def _copy_artifact(artifact: Path, folder: Path) -> Path:
    """Copy the artifact into the version's folder: a file as `model<suffix>`, a folder (a
    container model's) as `model/`; returns the copy."""
    if artifact.is_dir():
        dest = folder / "model"
        copy_tree(artifact, dest)
    else:
        dest = folder / f"model{artifact.suffix.lower()}"
        shutil.copyfile(artifact, dest)
    return dest
