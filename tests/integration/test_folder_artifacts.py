"""A model folder (a version only its serving container loads) on its way through the
artifact steps and retirement, on the embedded buckets and on S3 (moto over HTTP): staged,
copied to production and deleted whole under a URI ending in `/`; counted as one usage site;
trashed, put back on undo and purged whole. Nothing here loads a model."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.adapters.aws import S3ArtifactStore
from core.adapters.local.artifacts import LocalArtifactStore, sha256_tree
from core.adapters.local.registry import LocalRegistry
from core.bootstrap import SilentNotifier, load_workspace
from core.domain import (
    Command,
    Deployment,
    DeploymentState,
    Kind,
    Library,
    ModelVersion,
    UsageKind,
)
from core.events import StepSucceeded
from core.ports import ArtifactStore, Ports
from core.service import Service
from core.spec import DeploymentSpec
from core.steps.artifacts import ArtifactSteps
from core.steps.base import Done, Outcome
from core.steps.retirement import RetirementSteps
from core.store.sqlite import SqliteStore
from core.usage import sites_of
from tests.support.container_models import container_golden, huggingface_folder
from tests.support.fakes import RecordingCodeHost, RecordingMonitor, RecordingServing
from tests.support.moto_server import REGION, Aws, aws  # noqa: F401 (the fixture)

MODEL = "llm"
OTHER_REGION = "eu-west-1"
FOLDER = "models/llm/1/model/"
Handler = Callable[[Deployment, Command], Outcome]


def _now() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["local", "s3"])
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Service:
    """A service on the embedded registry and SQLite, with the embedded buckets or S3 (where
    a deployment to two regions copies the folder into each region's production bucket)."""
    home = tmp_path / "ws"
    home.mkdir()
    artifacts: ArtifactStore
    if request.param == "s3":
        aws: Aws = request.getfixturevalue("aws")
        artifacts = S3ArtifactStore(aws.clients, "mmm", REGION, home / "cache")
        regions = [REGION, OTHER_REGION]
    else:
        artifacts = LocalArtifactStore(home / "buckets")
        regions = ["local"]
    settings = {
        "worker": {"poll_s": 0.02, "backoff_s": 0},
        "defaults": {"regions": regions},
        "policy": {"admins": ["alice"]},  # a retirement of a version that serves: --force
    }
    (home / "mmm.yaml").write_text(yaml.safe_dump(settings))
    ports = Ports(
        registry=LocalRegistry(home / "registry"),
        artifacts=artifacts,
        codehost=RecordingCodeHost(),
        serving=RecordingServing(),
        monitor=RecordingMonitor(),
        notifier=SilentNotifier(),
    )
    return Service(load_workspace(home), SqliteStore(home / "state.db"), ports, "alice")


def _regions(svc: Service) -> list[str]:
    return list(svc.ws.settings.defaults["regions"])


def _production(svc: Service, key: str) -> list[str]:
    """The URI of `key` in the production bucket of each deployment region."""
    store = svc.ports.artifacts
    if isinstance(store, S3ArtifactStore):
        return [store.uri(store.bucket_in("production", r), key) for r in _regions(svc)]
    return [store.uri("production", key)]


def _register(svc: Service, tmp_path: Path, version: int) -> ModelVersion:
    """Version `version` of MODEL: a sharded Hugging Face folder, with golden data."""
    folder = huggingface_folder(tmp_path / f"llm{version}", sharded=True)
    (folder / "extra").mkdir()
    (folder / "extra" / "notes.md").write_text(f"version {version}\n")  # a path inside kept
    golden = container_golden(tmp_path / f"golden{version}.jsonl")
    return svc.ports.registry.register(MODEL, folder, Library.HUGGINGFACE, golden, "nlp", "alice")


def _record(svc: Service, kind: Kind, version: str) -> Deployment:
    now = _now().isoformat()
    deploy = kind is Kind.DEPLOY
    d = Deployment(
        id=f"{kind.value}-{version}",
        kind=kind,
        model=MODEL,
        version=version,
        endpoint="llm-api" if deploy else "-",
        regions=_regions(svc) if deploy else [],
        spec=DeploymentSpec(endpoint="llm-api" if deploy else None),
        requested_by="alice",
        created_at=now,
        updated_at=now,
    )
    if not deploy:
        d.context.versions = [version]
    return d


def _run(handler: Handler, d: Deployment, action: str, **args: Any) -> dict[str, Any]:
    """The result of a step (these never wait), what it learnt added to the facts."""
    outcome = handler(d, Command(key=f"{d.id}/forward/0/{action}", action=action, args=args))
    assert isinstance(outcome, Done), outcome
    d.context = d.context.merged(outcome.result.get("facts", {}))
    return outcome.result


def _steps(svc: Service) -> tuple[ArtifactSteps, RetirementSteps]:
    return (
        ArtifactSteps(svc.ws, svc.ports, svc.store, _now),
        RetirementSteps(svc.ws, svc.ports, svc.store, _now),
    )


def _provisioned(svc: Service, version: str) -> Deployment:
    """The version staged (validate) and copied to production (copy_artifact), as a
    deployment's steps leave it."""
    artifacts, _ = _steps(svc)
    d = _record(svc, Kind.DEPLOY, version)
    _run(artifacts.validate, d, "validate")
    _run(artifacts.copy_artifact, d, "copy_artifact")
    return d


def _tree(store: ArtifactStore, uri: str, into: Path) -> str:
    """The SHA-256 of the folder at `uri`, fetched with the store's own `get`."""
    return sha256_tree(store.get(uri, into))


def _everything(store: ArtifactStore) -> dict[str, list[str]]:
    return {b: store.list(b, "models/") for b in ("production", "staging")}


def test_a_folder_is_staged_copied_and_deleted_whole(svc: Service, tmp_path: Path) -> None:
    store = svc.ports.artifacts
    mv = _register(svc, tmp_path, 1)
    d = _provisioned(svc, "1")
    staged, production = d.context.artifact_staging, d.context.artifact_production
    assert staged is not None and production is not None
    assert store.locate(staged) == ("staging", FOLDER)
    assert store.locate(production) == ("production", FOLDER)
    assert _tree(store, staged, tmp_path / "a") == mv.sha256
    copies = _production(svc, FOLDER)
    for n, copy in enumerate(copies):  # every deployment region's bucket holds it whole
        assert _tree(store, copy, tmp_path / f"b{n}") == mv.sha256
        assert f"{copy}extra/notes.md" in store.list("production")
    # a model folder is one usage site (per copy), not one per file
    sites = [s for s in sites_of(svc.ports, MODEL) if s.kind is UsageKind.ARTIFACT]
    assert sorted(s.location for s in sites) == sorted(copies)
    # undone: the production copies, then the staged folder and golden data, go whole
    artifacts, _ = _steps(svc)
    _run(artifacts.delete_artifact, d, "delete_artifact", uris=[production])
    assert store.list("production") == []
    golden = d.context.golden_staging
    _run(artifacts.delete_staged, d, "delete_staged", uris=[staged, golden])
    assert _everything(store) == {"production": [], "staging": []}
    assert not store.exists(staged)


def test_a_retirement_moves_a_folder_whole_and_puts_it_back_on_undo(
    svc: Service, tmp_path: Path
) -> None:
    store = svc.ports.artifacts
    one = _register(svc, tmp_path, 1)
    _register(svc, tmp_path, 2)
    _provisioned(svc, "1")
    _provisioned(svc, "2")
    before = _everything(store)
    _, retirement = _steps(svc)
    r = _record(svc, Kind.RETIRE, "1")
    _run(retirement.scan_usage, r, "scan_usage")
    # whole artifacts: each production copy, the staged golden data, the staged folder
    assert r.context.artifact_uris == [
        *_production(svc, FOLDER),
        store.uri("staging", "models/llm/1/golden.jsonl"),
        store.uri("staging", FOLDER),
    ]
    moves = _run(retirement.trash_artifacts, r, "trash_artifacts")["moves"]
    assert [m["from"] for m in moves] == r.context.artifact_uris
    assert all(m["to"].endswith("/") == m["from"].endswith("/") for m in moves)
    assert [u for b in before for u in store.list(b, "models/llm/1/")] == []
    files_of_one = [u for b in before for u in before[b] if "/llm/1/" in u]
    assert len(store.list("trash", "retire-1/")) == len(files_of_one)
    # undo: every folder back whole where it was, and nothing left in the trash
    _run(retirement.restore_artifacts, r, "restore_artifacts", moves=moves)
    assert _everything(store) == before
    assert _tree(store, r.context.artifact_uris[0], tmp_path / "back") == one.sha256
    assert store.list("trash") == []
    # forward again, to the end: trashed, then purged whole; version 2 untouched
    _run(retirement.trash_artifacts, r, "trash_artifacts")
    purged = _run(retirement.purge_trash, r, "purge_trash")
    assert purged["summary"] == f"purged {len(files_of_one)} file(s)"
    assert store.list("trash") == []
    assert _everything(store) == {b: [u for u in before[b] if "/llm/2/" in u] for b in before}


def test_retiring_a_model_folder_through_the_service(svc: Service, tmp_path: Path) -> None:
    """The whole retirement, run by the worker: the folder moved and purged whole."""
    store = svc.ports.artifacts
    _register(svc, tmp_path, 1)
    _provisioned(svc, "1")
    d = svc.run(svc.retire(MODEL, "1"))
    assert d.state is DeploymentState.SUCCEEDED, d.shown_error
    done = {e.step: e.summary for e in d.events if isinstance(e, StepSucceeded)}
    artifacts = len(_regions(svc)) + 2  # the production copies, the staged folder and golden
    assert str(done["scan_usage"]).endswith(f", {artifacts} artifact(s)")
    assert done["trash_artifacts"] == f"{artifacts} artifact(s) removed"
    assert _everything(store) == {"production": [], "staging": []}
    assert store.list("trash") == []
    assert [s for s in sites_of(svc.ports, MODEL) if s.kind is UsageKind.ARTIFACT] == []


def _answer(instance: dict[str, Any]) -> str:
    """What container_golden expects for the prompt "What is i + i?"."""
    i = int(str(instance["inputs"]).split()[2])
    return str(i + i)


def test_a_model_folder_deployed_then_retired(svc: Service, tmp_path: Path) -> None:
    """Deployed by the worker (its golden data checked on the candidate variant), the folder
    serves from production whole; retired, nothing of it is left."""
    store = svc.ports.artifacts
    mv = _register(svc, tmp_path, 1)
    serving = svc.ports.serving
    assert isinstance(serving, RecordingServing)
    serving.models["llm-v1"] = _answer
    d = svc.run(svc.deploy(MODEL, "1", "llm-api"))
    assert d.state is DeploymentState.SUCCEEDED, d.shown_error
    production = d.context.artifact_production
    assert production is not None and store.locate(production) == ("production", FOLDER)
    config = serving.get_endpoint("llm-api", _regions(svc)[0])
    assert config is not None and [v.artifact for v in config.variants] == [production]
    assert _tree(store, production, tmp_path / "served") == mv.sha256
    # the generated code on main: the golden test skipped, the descriptor naming the folder
    codehost = svc.ports.codehost
    descriptor = yaml.safe_load(codehost.read("deploy/llm-api/llm.yaml") or "")
    assert descriptor["model"]["artifact_uri"] == store.code_uri(str(d.context.artifact_staging))
    assert descriptor["verification"]["golden_on"] == "endpoint"
    test = codehost.read("tests/mmm/test_llm_api_golden.py") or ""
    assert "@pytest.mark.skip(reason=REASON)" in test
    retired = svc.run(svc.retire(MODEL, "1", force=True))
    assert retired.state is DeploymentState.SUCCEEDED, retired.shown_error
    assert _everything(store) == {"production": [], "staging": []}
    assert store.list("trash") == []
