"""The one composition root: settings -> store, ports, service. Nothing connects at import."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from core.notify import SilentNotifier
from core.ports import ArtifactStore, CodeHost, Monitor, Ports, Registry, Serving
from core.spec import SpecError, load_yaml, parse_settings, read_text_file
from core.store import Store
from core.workspace import Workspace

if TYPE_CHECKING:
    from core.service import Service

SETTINGS_FILE = "mmm.yaml"

DEFAULT_SETTINGS = """\
# mmm workspace settings. Unknown keys are an error that names the key.
backends:                 # each defaults to the embedded one
  store: sqlite           # sqlite | dynamodb
  registry: local         # local | comet
  artifacts: local        # local | s3
  serving: local          # local | sagemaker
  codehost: local         # local | github
  monitor: local          # local | cloudwatch
aws:
  region: us-east-1
  endpoint_url: null      # e.g. a LocalStack or moto server; null for AWS itself
defaults:                 # any key of the deployment file, applied to every deployment
  gates: []
slack:
  users: {}               # Slack user id -> mmm identity, e.g. {U0123ABC: alice}
policy:
  allow_self_approval: false   # four-eyes: a requester cannot approve their own deployment
  deployers: []           # who may deploy and retire; empty: anyone
  approvers: {}           # per model or "team:<owner>" ("*" for all): who may approve
  admins: []              # may retire with --force
worker:
  lease_s: 30
  poll_s: 0.5
"""


class WorkspaceError(Exception):
    """The workspace is missing or unusable."""


def init_workspace(home: Path) -> tuple[Workspace, bool]:
    """Create the workspace with the embedded backends; returns it and whether it was new."""
    home.mkdir(parents=True, exist_ok=True)
    settings_path = home / SETTINGS_FILE
    created = not settings_path.exists()
    if created:
        settings_path.write_text(DEFAULT_SETTINGS)
    ws = load_workspace(home)
    for bucket in ("staging", "production", "captures", "reports", "trash"):
        (ws.buckets / bucket).mkdir(parents=True, exist_ok=True)
    ports = build_ports(ws)
    ports.codehost.files()  # creates the repository with its first commit
    build_store(ws).close()
    return ws, created


def load_workspace(home: Path) -> Workspace:
    settings_path = home / SETTINGS_FILE
    if not settings_path.exists():
        raise WorkspaceError(f"no workspace at {home} (run `mmm init` first, or pass --home)")
    source = str(settings_path)
    settings = parse_settings(load_yaml(read_text_file(settings_path), source), source)
    return Workspace(home=home, settings=settings)


def build_store(ws: Workspace) -> Store:
    if ws.settings.backends.store == "dynamodb":
        from core.adapters.aws.session import AwsClients
        from core.store.dynamodb import DynamoStore

        aws = ws.settings.aws
        return DynamoStore(AwsClients(aws.region, aws.endpoint_url), aws.table)
    from core.store.sqlite import SqliteStore

    return SqliteStore(ws.home / "state.db")


def _secret(name: str, kind: str, backend: str) -> str:
    """A credential from the environment (never from mmm.yaml)."""
    value = os.environ.get(name, "")
    if not value:
        raise WorkspaceError(f"backends.{kind}: {backend} needs {name} in the environment")
    return value


def build_registry(ws: Workspace) -> Registry:
    if ws.settings.backends.registry == "comet":
        from core.adapters.comet import CometRegistry

        workspace = ws.settings.comet.workspace
        if not workspace:
            raise WorkspaceError("backends.registry: comet needs comet.workspace in mmm.yaml")
        return CometRegistry(workspace, _secret("COMET_API_KEY", "registry", "comet"))
    from core.adapters.local.registry import LocalRegistry

    return LocalRegistry(ws.home / "registry")


def build_codehost(ws: Workspace, artifacts: ArtifactStore | None = None) -> CodeHost:
    """`artifacts`: where the local checks fetch artifacts held remotely (S3)."""
    if ws.settings.backends.codehost == "github":
        from core.adapters.github import GitHubCodeHost
        from core.codegen.standalone import self_contained, workflow_files

        gh = ws.settings.github
        if not gh.repo:
            raise WorkspaceError("backends.codehost: github needs github.repo in mmm.yaml")
        return GitHubCodeHost(
            gh.repo,
            _secret("GITHUB_TOKEN", "codehost", "github"),
            base_url=gh.base_url,
            base_branch=gh.base_branch,
            checks_timeout_s=gh.checks_timeout_s,
            # Its checks run in GitHub Actions, without mmm: self-contained golden tests
            # and, on first use, the workflow that runs them.
            rewrite_files=self_contained,
            extra_files=workflow_files(gh.base_branch, gh.aws_role_arn, ws.settings.aws.region),
        )
    from core.adapters.local.codehost import LocalGitCodeHost

    # Checkouts of the application (with its golden data) go to the workspace's scratch.
    return LocalGitCodeHost(
        ws.repo, scratch=lambda: ws.scratch, runs=ws.home / "checks", artifacts=artifacts
    )


def build_ports(ws: Workspace) -> Ports:
    b = ws.settings.backends
    from core.adapters.local.artifacts import LocalArtifactStore
    from core.adapters.local.monitor import LocalMonitor
    from core.adapters.local.serving import LocalServing

    aws = ws.settings.aws
    clients = None
    if b.artifacts == "s3" or b.serving == "sagemaker" or b.monitor == "cloudwatch":
        from core.adapters.aws.session import AwsClients

        # one set of clients (boto3's standard credential chain) for all three
        clients = AwsClients(aws.region, aws.endpoint_url)
    artifacts: ArtifactStore
    if b.artifacts == "s3":
        from core.adapters.aws.s3 import S3ArtifactStore

        assert clients is not None
        artifacts = S3ArtifactStore(
            clients, aws.bucket_prefix, aws.region, ws.home / "cache" / "s3"
        )
    else:
        artifacts = LocalArtifactStore(ws.buckets)
    serving: Serving
    if b.serving == "sagemaker":
        from core.adapters.aws.sagemaker import SageMakerServing

        assert clients is not None
        serving = SageMakerServing(
            clients, aws.role_arn, aws.images, aws.regions, bucket_prefix=aws.bucket_prefix
        )
    else:
        serving = LocalServing(ws.home, resolve=artifacts.local_path)
    monitor: Monitor
    if b.monitor == "cloudwatch":
        from core.adapters.aws.cloudwatch import CloudWatchMonitor

        assert clients is not None
        monitor = CloudWatchMonitor(clients, aws.regions)
    else:
        monitor = LocalMonitor(ws.home)
    return Ports(
        registry=build_registry(ws),
        artifacts=artifacts,
        codehost=build_codehost(ws, artifacts),
        serving=serving,
        monitor=monitor,
        notifier=SilentNotifier(),
    )


def build_service(home: Path, actor: str, ports: Ports | None = None) -> Service:
    from core.service import Service

    ws = load_workspace(home)
    return Service(ws, build_store(ws), ports or build_ports(ws), actor)


__all__ = [
    "Ports",
    "SilentNotifier",
    "SpecError",
    "Workspace",
    "WorkspaceError",
    "build_codehost",
    "build_ports",
    "build_registry",
    "build_service",
    "build_store",
    "init_workspace",
    "load_workspace",
]
