"""Looking for secrets wherever a run of mmm may have left them, for tests.

`Scan` collects places, each a name and the bytes found there: files of a folder (a SQLite
database also row by row, a zlib or gzip stream also inflated, a git repository also object
by object), and what the local fakes of Comet, GitHub and Slack and a moto server hold and
were sent. `Scan.leaks(secrets)` then names every place that holds a secret, whole or in a
form that hides it from a plain search: its first or last 16 characters (a value cut short
in a message) and base64 (a header or a blob encoded on the way).

    python -m tests.support.secret_scan ARGS...

runs the `mmm` command (`mmm_cli.main.main`, as the console script does) with every logger
at DEBUG on stderr, so that a scan of its output sees whatever mmm and the clients it uses
log, not only the warnings mmm shows by default. botocore stays at INFO: at DEBUG it prints
each signed request, session token included (SECURITY.md, "Known limits").
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.fake_comet import FakeComet
from tests.support.fake_github import FakeGitHub
from tests.support.fake_slack import FakeSlack

__all__ = [
    "Scan",
    "aws_places",
    "comet_places",
    "github_places",
    "hidden_forms",
    "model_environments",
    "slack_places",
]


def _bytes(data: bytes | str | object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    return json.dumps(data, default=str, ensure_ascii=False).encode()


def hidden_forms(secret: str) -> list[bytes]:
    """`secret` as a search finds it: whole, its first and last 16 characters, and the part
    of its base64 that depends on it alone, at each of the three alignments it may have."""
    raw = secret.encode()
    forms = [raw]
    if len(raw) > 16:
        forms += [raw[:16], raw[-16:]]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        start = -(-pad * 8 // 6)  # the first character made of the secret's bits only
        end = (pad + len(raw)) * 8 // 6  # the last one that is whole
        forms.append(encoded[start:end])
    return forms


@dataclass
class Scan:
    """Places to search: name -> bytes."""

    places: dict[str, bytes] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.places.values())

    def add(self, place: str, data: bytes | str | object) -> None:
        """Keep `data` (bytes, text, or anything JSON can show) under `place`; a place
        named twice is kept twice."""
        name, n = place, 1
        while name in self.places:
            n += 1
            name = f"{place} #{n}"
        self.places[name] = _bytes(data)

    def add_all(self, places: Iterable[tuple[str, bytes | str | object]]) -> None:
        for place, data in places:
            self.add(place, data)

    def add_files(self, root: Path, label: str) -> int:
        """Every file under `root` (links not followed): its bytes, and a SQLite database's
        rows, a zlib or gzip stream inflated, a git repository's objects. Returns how many
        files there were."""
        count = 0
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or not path.is_file():
                if path.is_dir() and (path / "HEAD").is_file() and (path / "objects").is_dir():
                    self.add_all(git_objects(path, f"{label}/{path.relative_to(root)}"))
                continue
            count += 1
            place = f"{label}/{path.relative_to(root)}"
            data = path.read_bytes()
            self.add(place, data)
            if data.startswith(b"SQLite format 3\0"):
                self.add_all(sqlite_rows(path, place))
            inflated = _inflated(data)
            if inflated is not None:
                self.add(f"{place} (inflated)", inflated)
        return count

    def leaks(self, secrets: Mapping[str, str]) -> list[str]:
        """`NAME in PLACE` for every secret found, in any of its `hidden_forms`."""
        found = []
        for name, value in secrets.items():
            forms = hidden_forms(value)
            for place, data in self.places.items():
                if any(form in data for form in forms):
                    found.append(f"{name} in {place}")
        return found


def _inflated(data: bytes) -> bytes | None:
    try:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:1] == b"\x78":
            return zlib.decompress(data)
    except (OSError, EOFError, zlib.error):
        return None
    return None


def sqlite_rows(path: Path, place: str) -> Iterator[tuple[str, object]]:
    """Each table of the database at `path`, every row as JSON: a text longer than a page
    is split across pages in the file, where a search of its bytes would miss it. Read from
    a copy (with its -wal), so the database itself is never opened."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                shutil.copyfile(side, copy.with_name(copy.name + suffix))
        db = sqlite3.connect(copy)
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
                shown = [
                    [v.decode("latin-1") if isinstance(v, bytes) else v for v in r] for r in rows
                ]
                yield f"{place} table {table}", shown
        finally:
            db.close()


def git_objects(repo: Path, place: str) -> Iterator[tuple[str, object]]:
    """Every object of the git repository `repo` (loose or packed), its content inflated,
    and its refs."""
    for args in (
        ["cat-file", "--batch-all-objects", "--batch"],
        ["for-each-ref", "--format=%(refname) %(objectname)"],
    ):
        shown = subprocess.run(
            ["git", f"--git-dir={repo}", *args],
            capture_output=True,
            check=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        yield f"{place} ({args[0]})", shown.stdout


# ---------------------------------------------------------------- the fakes


def github_places(gh: FakeGitHub) -> Iterator[tuple[str, object]]:
    """Every file version, commit message, branch and pull request of the fake, the checks'
    statuses, and every request it was sent but its Authorization header."""
    for sha, text in gh.blobs.items():
        yield f"github blob {sha[:10]}", text
    for sha, commit in gh.commits.items():
        yield f"github commit {sha[:10]}", commit.message
    yield "github branches", gh.refs
    for number, pull in gh.pulls.items():
        yield f"github pull #{number}", [pull.title, pull.body, pull.head, pull.base]
    yield "github statuses", gh.statuses
    for i, r in enumerate(gh.requests):
        yield f"github request {i} {r.method} {r.path}", [r.path, r.params, r.body]


def comet_places(comet: FakeComet) -> Iterator[tuple[str, object]]:
    """Every registry model and version of the fake (tags, status, comment, who registered,
    asset files), every experiment with its files, and every request it was sent but its
    Authorization header."""
    for (workspace, name), model in comet.models.items():
        for version in model.versions.values():
            where = f"comet {workspace}/{name} {version.version}"
            yield where, [version.status, version.tags, version.user, version.comment]
            for file_name, data in version.files.items():
                yield f"{where} file {file_name}", data
    for key, experiment in comet.experiments.items():
        yield f"comet experiment {key}", [experiment.project, experiment.name]
        for logged, files in experiment.models.items():
            for file_name, data in files.items():
                yield f"comet experiment {key} model {logged} file {file_name}", data
        for file_name, data in experiment.assets.items():
            yield f"comet experiment {key} asset {file_name}", data
    for i, r in enumerate(comet.requests):
        yield f"comet request {i} {r.method} {r.path}", [r.path, r.params, r.body]
        for part, data in r.files.items():
            yield f"comet request {i} part {part}", data


def slack_places(slack: FakeSlack) -> Iterator[tuple[str, object]]:
    """Every message with its blocks and metadata as the fake keeps it, every Web API call's
    arguments, and every answer posted to a response URL."""
    for m in slack.messages:
        yield f"slack message {m.channel} {m.ts}", [m.rendered(), m.metadata, m.thread_ts]
    for i, c in enumerate(slack.calls):
        yield f"slack call {i} {c.method}", c.args
    for i, (name, body) in enumerate(slack.responses):
        yield f"slack answer {i} to {name}", body


# ---------------------------------------------------------------- AWS (a moto server)


def aws_places(client: Any, label: str) -> Iterator[tuple[str, object]]:
    """What the AWS account holds now: every S3 object (key, metadata, body) in every bucket,
    every SageMaker model, endpoint config and endpoint as described, every CloudWatch alarm
    with its history, every dashboard. `client(service)` gives a boto3 client."""
    s3 = client("s3")
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        for obj in s3.list_objects_v2(Bucket=name).get("Contents", []):
            key = obj["Key"]
            head = s3.head_object(Bucket=name, Key=key)
            body = s3.get_object(Bucket=name, Key=key)["Body"].read()
            yield f"{label} s3://{name}/{key}", [key, head.get("Metadata"), head.get("ContentType")]
            yield f"{label} s3://{name}/{key} body", body
    sm = client("sagemaker")
    for m in sm.list_models()["Models"]:
        yield (
            f"{label} sagemaker model {m['ModelName']}",
            sm.describe_model(ModelName=m["ModelName"]),
        )
    for c in sm.list_endpoint_configs()["EndpointConfigs"]:
        name = c["EndpointConfigName"]
        yield (
            f"{label} sagemaker endpoint config {name}",
            sm.describe_endpoint_config(EndpointConfigName=name),
        )
    for e in sm.list_endpoints()["Endpoints"]:
        name = e["EndpointName"]
        yield f"{label} sagemaker endpoint {name}", sm.describe_endpoint(EndpointName=name)
    cw = client("cloudwatch")
    alarms = cw.describe_alarms()
    yield f"{label} cloudwatch alarms", [alarms.get("MetricAlarms"), alarms.get("CompositeAlarms")]
    yield f"{label} cloudwatch alarm history", cw.describe_alarm_history().get("AlarmHistoryItems")
    for d in cw.list_dashboards()["DashboardEntries"]:
        name = d["DashboardName"]
        yield f"{label} cloudwatch dashboard {name}", cw.get_dashboard(DashboardName=name)


def model_environments(client: Any) -> dict[str, dict[str, str]]:
    """The Environment of every SageMaker model's container, by model name."""
    sm = client("sagemaker")
    out = {}
    for m in sm.list_models()["Models"]:
        described = sm.describe_model(ModelName=m["ModelName"])
        out[m["ModelName"]] = dict(described["PrimaryContainer"].get("Environment") or {})
    return out


# ---------------------------------------------------------------- the command, logging


def main() -> None:
    logging.basicConfig(
        level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("botocore").setLevel(logging.INFO)
    from mmm_cli.main import main as mmm

    mmm()


if __name__ == "__main__":
    main()
