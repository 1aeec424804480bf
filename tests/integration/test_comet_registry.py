"""The Comet registry adapter, driving the real comet_ml client against a local fake of
Comet's REST API that keeps registry state and records every request: reading versions,
marking where they stand, and registering new ones (then deploying one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.adapters.comet.records import model_file, next_version
from core.adapters.local.artifacts import LocalArtifactStore, sha256_tree, tree_files
from core.checks import check_files
from core.domain import DeploymentState, Library, VersionStatus
from core.layout import artifact_key
from core.ports import InvalidInput, NotFound, TransientError
from tests.support.container_models import (
    container_golden,
    huggingface_folder,
    torchscript_archive,
    vision_folder,
)
from tests.support.fake_comet import FakeComet
from tests.support.fake_github import FakeGitHub
from tests.support.models import train_sklearn_regressor, write_golden
from tests.support.real_backends import (
    COMET_KEY,
    GITHUB_TOKEN,
    REPO,
    WORKSPACE,
    comet_github_service,
    comet_registry,
    running_comet,
)

FILES = {"model.joblib": b"\x80\x04model", "golden.jsonl": b'{"input": [1], "output": 2}\n'}


@pytest.fixture
def comet(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeComet]:
    with running_comet(monkeypatch) as fake:
        fake.add_version(WORKSPACE, "churn", "1.0.0", FILES, tags=["owner:risk"], user="carol")
        fake.add_version(WORKSPACE, "churn", "1.1.0", {"model.json": b"{}"})
        fake.add_version(WORKSPACE, "fraud", "2.0.0", {"m.pkl": b"\x80"}, tags=["library:xgboost"])
        fake.add_version("another-team", "secret", "1.0.0", FILES)
        yield fake


def test_lists_the_workspace_models_and_versions_as_comet_names_them(comet: FakeComet) -> None:
    registry = comet_registry()
    listed = {(mv.name, mv.version): mv for mv in registry.versions()}
    assert set(listed) == {("churn", "1.0.0"), ("churn", "1.1.0"), ("fraud", "2.0.0")}
    first = listed[("churn", "1.0.0")]
    assert (first.library, first.format, first.artifact, first.golden) == (
        Library.SKLEARN,
        "joblib",
        "model.joblib",
        "golden.jsonl",
    )
    assert (first.owner, first.created_by, first.status) == ("risk", "carol", "registered")
    assert listed[("churn", "1.1.0")].library is Library.XGBOOST  # told by the file
    assert listed[("fraud", "2.0.0")].library is Library.XGBOOST  # told by the tag
    assert [mv.version for mv in registry.versions("churn")] == ["1.0.0", "1.1.0"]
    assert registry.versions("nothing-here") == []
    # the key travels as comet_ml sends it, on every request
    assert {r.authorization for r in comet.requests if r.path.startswith("registry")} == {COMET_KEY}


def test_a_missing_model_or_version_is_refused_without_a_write(comet: FakeComet) -> None:
    registry = comet_registry()
    with pytest.raises(NotFound, match="model 'nope' is not in the registry of Comet"):
        registry.get("nope", "1.0.0")
    with pytest.raises(NotFound, match=r"no version 9\.9\.9 in Comet \(versions: 1\.0\.0, 1\.1"):
        registry.get("churn", "9.9.9")
    with pytest.raises(NotFound):
        registry.set_status("churn", "9.9.9", VersionStatus.PRODUCTION, "alice")
    assert comet.writes() == []


def test_fetches_the_model_file_and_golden_data(comet: FakeComet, tmp_path: Path) -> None:
    registry = comet_registry()
    mv = registry.get("churn", "1.0.0")
    artifact = registry.fetch(mv, "artifact", tmp_path / "a")
    golden = registry.fetch(mv, "golden", tmp_path / "a")
    assert (artifact.name, artifact.read_bytes()) == ("model.joblib", FILES["model.joblib"])
    assert golden.read_bytes() == FILES["golden.jsonl"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["golden.jsonl", "model.joblib"]
    no_golden = registry.get("churn", "1.1.0")
    with pytest.raises(NotFound, match="no golden"):
        registry.fetch(no_golden, "golden", tmp_path / "b")


def test_status_goes_to_comet_as_tags_and_allowed_statuses(comet: FakeComet) -> None:
    registry = comet_registry()
    assert registry.set_status("churn", "1.0.0", VersionStatus.PRODUCTION, "a") == "registered"
    stored = comet.version(WORKSPACE, "churn", "1.0.0")
    assert ("production" in stored.tags, stored.status) == (True, "Production")
    assert registry.get("churn", "1.0.0").status is VersionStatus.PRODUCTION
    writes = len(comet.writes())
    assert registry.set_status("churn", "1.0.0", VersionStatus.PRODUCTION, "a") == "production"
    assert len(comet.writes()) == writes  # already there: nothing written
    # Archived is not a status value this workspace allows: the tag says it alone
    assert registry.set_status("churn", "1.0.0", VersionStatus.ARCHIVED, "a") == "production"
    stored = comet.version(WORKSPACE, "churn", "1.0.0")
    assert [t for t in stored.tags if not t.startswith("owner:")] == ["archived"]
    assert not any(
        r.body and r.body.get("status") == "Archived" for r in comet.requests_to("write/")
    )
    registry.set_status("churn", "1.0.0", VersionStatus.RETIRED, "a")
    assert registry.get("churn", "1.0.0").status is VersionStatus.RETIRED
    registry.set_status("churn", "1.0.0", VersionStatus.REGISTERED, "a")  # an undo
    assert comet.version(WORKSPACE, "churn", "1.0.0").tags == ["owner:risk"]


def test_endpoint_tags_name_where_a_version_stands(comet: FakeComet) -> None:
    registry = comet_registry()

    def tags() -> list[str]:
        return [t for t in comet.version(WORKSPACE, "churn", "1.0.0").tags if t != "owner:risk"]

    registry.set_status("churn", "1.0.0", VersionStatus.STAGING, "a", endpoint="churn")
    assert tags() == ["staging", "endpoint:churn"]
    registry.set_status("churn", "1.0.0", VersionStatus.PRODUCTION, "a", endpoint="churn")
    assert tags() == ["endpoint:churn", "production"]
    # the same version on a second endpoint: one more tag, the status already there
    writes = len(comet.writes())
    registry.set_status("churn", "1.0.0", VersionStatus.PRODUCTION, "a", endpoint="fraud")
    assert tags() == ["endpoint:churn", "production", "endpoint:fraud"]
    assert len(comet.writes()) == writes + 1
    registry.set_status("churn", "1.0.0", VersionStatus.PRODUCTION, "a", endpoint="fraud")
    assert len(comet.writes()) == writes + 1  # already so: nothing written
    # no endpoint named: the endpoint tags stay as they are
    registry.set_status("churn", "1.0.0", VersionStatus.STAGING, "a")
    assert tags() == ["endpoint:churn", "endpoint:fraud", "staging"]
    # an undone deployment takes its own endpoint's tag off
    registry.set_status("churn", "1.0.0", VersionStatus.REGISTERED, "a", endpoint="fraud")
    assert tags() == ["endpoint:churn"]
    # archived (off its last endpoint) or retired: no endpoint tag is left
    registry.set_status("churn", "1.0.0", VersionStatus.PRODUCTION, "a", endpoint="churn")
    registry.set_status("churn", "1.0.0", VersionStatus.ARCHIVED, "a", endpoint="churn")
    assert tags() == ["archived"]
    registry.set_status("churn", "1.1.0", VersionStatus.PRODUCTION, "a", endpoint="churn")
    registry.set_status("churn", "1.1.0", VersionStatus.RETIRED, "a")
    assert comet.version(WORKSPACE, "churn", "1.1.0").tags == ["retired"]
    assert registry.get("churn", "1.1.0").status is VersionStatus.RETIRED


def test_a_busy_comet_is_transient_and_a_missing_version_is_not(comet: FakeComet) -> None:
    registry = comet_registry()
    comet.fail("registry-model/details", status=500)
    with pytest.raises(TransientError, match=r"HTTP 500.*waiting on Comet"):
        registry.get("churn", "1.0.0")
    assert registry.get("churn", "1.0.0").version == "1.0.0"  # the next answer is a 200
    comet.fail("registry-model/details", status=429)
    with pytest.raises(TransientError):
        registry.versions("churn")
    comet.fail("registry-model/details", status=404)
    with pytest.raises(NotFound):
        registry.get("churn", "1.0.0")


def test_a_wrong_key_is_a_clear_error_that_does_not_show_it(
    comet: FakeComet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.adapters.comet import CometRegistry
    from core.ports import PortError

    with pytest.raises(PortError, match="check COMET_API_KEY") as caught:
        CometRegistry(WORKSPACE, "wrong-key-123").get("churn", "1.0.0")
    assert "wrong-key-123" not in str(caught.value)


def test_register_makes_the_next_version_with_its_files_and_tags(
    comet: FakeComet, tmp_path: Path
) -> None:
    artifact = train_sklearn_regressor(tmp_path / "m", seed=0)
    golden = write_golden(artifact, Library.SKLEARN, tmp_path / "m")
    registry = comet_registry()
    mv = registry.register("churn", artifact, Library.SKLEARN, golden, "risk", "alice")
    # churn has 1.0.0 and 1.1.0: the next minor version
    assert (mv.version, mv.library, mv.format, mv.owner) == ("1.2.0", "sklearn", "joblib", "risk")
    assert (mv.artifact, mv.golden, mv.status) == ("model.joblib", "golden.jsonl", "registered")
    stored = comet.version(WORKSPACE, "churn", "1.2.0")
    assert stored.tags == ["library:sklearn", "owner:risk"]
    assert stored.files == {
        "model.joblib": artifact.read_bytes(),
        "golden.jsonl": golden.read_bytes(),
    }
    assert "alice" in stored.comment
    # made the way Comet registers: an experiment, the files logged to it as a model
    (experiment,) = comet.experiments.values()
    assert (experiment.workspace, experiment.project) == (WORKSPACE, "mmm-registrations")
    assert set(experiment.models) == {"churn"}
    uploads = comet.requests_to("write/experiment/upload-asset", "POST")
    assert {(r.params["type"], r.params["groupingName"]) for r in uploads} == {
        ("model-element", "churn")
    }
    # a model new to the workspace starts at 1.0.0; without golden data or an owner
    fresh = registry.register("brand_new", artifact, Library.SKLEARN, None, None, "alice")
    assert (fresh.version, fresh.golden, fresh.owner) == ("1.0.0", None, None)
    assert comet.version(WORKSPACE, "brand_new", "1.0.0").tags == ["library:sklearn"]
    assert [v.version for v in registry.versions("churn")] == ["1.0.0", "1.1.0", "1.2.0"]
    assert {r.authorization for r in comet.writes()} == {COMET_KEY}


def test_a_version_taken_meanwhile_makes_the_registration_take_the_next(
    comet: FakeComet, tmp_path: Path
) -> None:
    artifact = train_sklearn_regressor(tmp_path / "m", seed=0)
    # another registration gets 1.2.0 between mmm reading the versions and registering
    comet.meanwhile(
        "write/registry-model/item/create",
        lambda: comet.add_version(WORKSPACE, "churn", "1.2.0", FILES, user="bob"),
    )
    mv = comet_registry().register("churn", artifact, Library.SKLEARN, None, "risk", "alice")
    assert mv.version == "1.3.0"
    assert comet.version(WORKSPACE, "churn", "1.2.0").user == "bob"  # left as it was
    assert comet.version(WORKSPACE, "churn", "1.3.0").files == {
        "model.joblib": artifact.read_bytes()
    }
    created = comet.requests_to("write/registry-model/item/create")
    assert [r.body["version"] for r in created if r.body] == ["1.2.0", "1.3.0"]


def test_next_version_follows_the_highest_semantic_version() -> None:
    assert next_version([]) == "1.0.0"
    assert next_version(["1.0.0", "1.1.0"]) == "1.2.0"
    assert next_version(["1.10.0", "1.9.0", "2.0.3"]) == "2.1.0"
    assert next_version(["1.3.0-rc1", "latest"]) == "1.4.0"


def test_a_registration_that_cannot_be_made_writes_no_version(
    comet: FakeComet, tmp_path: Path
) -> None:
    registry = comet_registry()
    with pytest.raises(InvalidInput, match="no such file"):
        registry.register("churn", tmp_path / "none.joblib", Library.SKLEARN, None, None, "a")
    artifact = train_sklearn_regressor(tmp_path / "m", seed=0)
    comet.fail("write/registry-model/item/create", status=503)
    with pytest.raises(TransientError, match="waiting on Comet"):
        registry.register("churn", artifact, Library.SKLEARN, None, None, "alice")
    assert [v.version for v in registry.versions("churn")] == ["1.0.0", "1.1.0"]


def test_registered_through_mmm_then_deployed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_comet(monkeypatch) as comet, FakeGitHub(REPO, token=GITHUB_TOKEN) as gh:
        svc = comet_github_service(tmp_path / "ws", monkeypatch, gh)
        artifact = train_sklearn_regressor(tmp_path / "m", seed=0)
        golden = write_golden(artifact, Library.SKLEARN, tmp_path / "m")
        mv = svc.register("churn_model", artifact, "sklearn", golden, owner="risk")
        assert mv.version == "1.0.0"
        d = svc.run(svc.deploy("churn_model", mv.version, "churn"))
        assert d.state is DeploymentState.SUCCEEDED, d.shown_error
        tags = comet.version(WORKSPACE, "churn_model", "1.0.0").tags
        assert {"library:sklearn", "owner:risk", "production", "endpoint:churn"} <= set(tags)
        config = svc.ports.serving.get_endpoint("churn", "local")
        assert config is not None and [v.weight for v in config.variants] == [100]


def test_a_version_needs_exactly_one_model_file() -> None:
    assert model_file("m", "1", ["golden.jsonl", "model_metadata.json", "m.onnx"]) == "m.onnx"
    with pytest.raises(InvalidInput, match="no model file"):
        model_file("m", "1", ["golden.jsonl"])
    with pytest.raises(InvalidInput, match="more than one"):
        model_file("m", "1", ["a.joblib", "b.onnx"])


# ---------------------------------------------------------------- models only a container loads


def _same_files(a: Path, b: Path) -> bool:
    files = tree_files(a)
    return files == tree_files(b) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files
    )


def test_a_model_folder_registers_reads_back_and_fetches_whole(
    comet: FakeComet, tmp_path: Path
) -> None:
    source = huggingface_folder(tmp_path / "llm", sharded=True)
    (source / "extra").mkdir()
    (source / "extra" / "notes.md").write_text("kept at its relative path\n")
    golden = container_golden(tmp_path / "golden.jsonl")
    registry = comet_registry()
    mv = registry.register("churn-llm", source, Library.HUGGINGFACE, golden, "nlp", "alice")
    assert (mv.version, mv.library, mv.format) == ("1.0.0", Library.HUGGINGFACE, "safetensors")
    assert (mv.artifact, mv.golden, mv.owner) == ("model/", "golden.jsonl", "nlp")
    # in Comet: each file under one folder, as comet_ml's log_model logs a folder
    stored = comet.version(WORKSPACE, "churn-llm", "1.0.0")
    assert stored.files == {
        **{f"model/{rel}": (source / rel).read_bytes() for rel in tree_files(source)},
        "golden.jsonl": golden.read_bytes(),
    }
    assert stored.tags == ["library:huggingface", "owner:nlp"]
    assert registry.get("churn-llm", "1.0.0") == mv
    # fetched whole, relative paths kept; a second fetch leaves nothing of the first
    dest = tmp_path / "fetched"
    fetched = registry.fetch(mv, "artifact", dest)
    assert fetched == dest / "model" and _same_files(fetched, source)
    assert sha256_tree(fetched) == sha256_tree(source)
    (fetched / "stale.txt").write_text("left by an earlier fetch")
    assert not (registry.fetch(mv, "artifact", dest) / "stale.txt").exists()
    assert registry.fetch(mv, "golden", dest).read_bytes() == golden.read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == ["golden.jsonl", "model"]
    # what deploy and the worker's validate do with it: check its files, stage it whole
    assert check_files(registry, mv, tmp_path / "scratch") == 3
    store = LocalArtifactStore(tmp_path / "buckets")
    staged = store.put("staging", artifact_key("churn-llm", mv.version, "model/"), fetched)
    assert staged == "local://staging/models/churn-llm/1.0.0/model/"
    assert _same_files(store.local_path(staged), source)


def test_a_pytorch_model_registers_as_one_file_or_a_folder(
    comet: FakeComet, tmp_path: Path
) -> None:
    registry = comet_registry()
    archive = torchscript_archive(tmp_path / "resnet.pt")
    alone = registry.register("vision", archive, Library.PYTORCH, None, None, "alice")
    assert (alone.artifact, alone.format, alone.library) == ("model.pt", "torchscript", "pytorch")
    assert comet.version(WORKSPACE, "vision", "1.0.0").files == {"model.pt": archive.read_bytes()}
    got = registry.fetch(alone, "artifact", tmp_path / "a")
    assert (got.name, got.read_bytes()) == ("model.pt", archive.read_bytes())
    folder = vision_folder(tmp_path / "vit")
    kept = registry.register("vision", folder, Library.PYTORCH, None, None, "alice")
    assert (kept.version, kept.artifact, kept.format) == ("1.1.0", "model/", "torchscript")
    assert _same_files(registry.fetch(kept, "artifact", tmp_path / "b"), folder)
    assert [mv.artifact for mv in registry.versions("vision")] == ["model.pt", "model/"]


def test_a_model_folder_registered_outside_mmm_reads_by_its_one_folder(
    comet: FakeComet, tmp_path: Path
) -> None:
    """As comet_ml's log_model("llm", "path/to/llama") logs it: every file under `llama/`."""
    source = huggingface_folder(tmp_path / "llama", bin_weights=True)
    files = {f"llama/{rel}": (source / rel).read_bytes() for rel in tree_files(source)}
    comet.add_version(WORKSPACE, "llama", "2.0.0", files, tags=["library:huggingface"])
    mv = comet_registry().get("llama", "2.0.0")
    assert (mv.artifact, mv.format, mv.golden) == ("llama/", "bin", None)
    fetched = comet_registry().fetch(mv, "artifact", tmp_path / "out")
    assert fetched.name == "llama" and _same_files(fetched, source)


def test_a_container_version_laid_out_otherwise_is_refused_in_one_line(
    comet: FakeComet,
) -> None:
    loose = {"config.json": b"{}", "model.safetensors": b"x", "golden.jsonl": b"{}"}
    comet.add_version(WORKSPACE, "flat-llm", "1.0.0", loose, tags=["library:huggingface"])
    no_weights = {"model/config.json": b"{}", "model/tokenizer.json": b"{}"}
    comet.add_version(WORKSPACE, "flat-llm", "1.1.0", no_weights, tags=["library:huggingface"])
    two = {"a/model.pt": b"x", "b/model.pt": b"y"}
    comet.add_version(WORKSPACE, "vision", "1.0.0", two, tags=["library:pytorch"])
    registry = comet_registry()
    with pytest.raises(InvalidInput) as refused:
        registry.get("flat-llm", "1.0.0")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(
        "flat-llm 1.0.0 in Comet (library:huggingface) has config.json, golden.jsonl, "
        "model.safetensors; a huggingface version holds its model folder (its files under one "
        "folder, model/..., as comet_ml's log_model logs a folder, with weights)"
    )
    with pytest.raises(InvalidInput, match=r"^flat-llm 1\.1\.0 in Comet .*with weights"):
        registry.get("flat-llm", "1.1.0")
    with pytest.raises(InvalidInput, match=r"a pytorch version holds one \*\.pt file or its"):
        registry.get("vision", "1.0.0")
    assert registry.versions("flat-llm") == []  # listed by Comet, not deployable: passed over
