"""The local registry keeps a container model's folder whole: registered by copying the tree,
named by the tree's SHA-256, fetched back as the same folder; the embedded serving refuses
to serve one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from core.adapters.local.artifacts import LocalArtifactStore, sha256_file, sha256_tree, tree_files
from core.adapters.local.registry import LocalRegistry
from core.adapters.local.serving import LocalServing
from core.checks import check_files
from core.domain import Library
from core.layout import artifact_key
from core.ports import EndpointConfig, InvalidInput, NotFound, ShadowConfig, Variant
from tests.support.container_models import (
    container_golden,
    huggingface_folder,
    torchscript_archive,
    vision_folder,
)
from tests.support.models import train_sklearn_regressor


@pytest.fixture
def registry(tmp_path: Path) -> LocalRegistry:
    return LocalRegistry(tmp_path / "registry")


def same_files(a: Path, b: Path) -> bool:
    files = tree_files(a)
    return files == tree_files(b) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files
    )


def test_the_sha256_of_a_tree_is_over_its_paths_and_their_files_digests(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("b")
    (folder / "sub" / "a.txt").write_text("a")
    expected = hashlib.sha256()
    for rel in ("b.txt", "sub/a.txt"):
        expected.update(f"{rel}\0{sha256_file(folder / rel)}\0".encode())
    assert sha256_tree(folder) == expected.hexdigest()
    moved = tmp_path / "elsewhere" / "m"
    moved.parent.mkdir()
    folder.rename(moved)
    assert sha256_tree(moved) == expected.hexdigest()  # where the folder lies does not count
    (moved / "sub" / "a.txt").rename(moved / "a.txt")
    assert sha256_tree(moved) != expected.hexdigest()  # where a file lies in it does


def test_a_huggingface_folder_registers_as_a_copy_of_its_tree(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    source = huggingface_folder(tmp_path / "llm", sharded=True)
    golden = container_golden(tmp_path / "golden.jsonl")
    mv = registry.register("churn-llm", source, Library.HUGGINGFACE, golden, "nlp", "alice")
    assert (mv.version, mv.library, mv.format) == ("1", Library.HUGGINGFACE, "safetensors")
    assert mv.artifact == "files/churn-llm/1/model"
    stored = registry.root / mv.artifact
    assert stored.is_dir() and same_files(stored, source)
    assert mv.sha256 == sha256_tree(source)
    assert registry.get("churn-llm", "1") == mv


def test_a_fetched_folder_is_the_registered_one(tmp_path: Path, registry: LocalRegistry) -> None:
    source = huggingface_folder(tmp_path / "llm")
    golden = container_golden(tmp_path / "golden.jsonl", cases=2)
    mv = registry.register("churn-llm", source, Library.HUGGINGFACE, golden, None, "alice")
    dest = tmp_path / "fetched"
    fetched = registry.fetch(mv, "artifact", dest)
    assert fetched == dest / "model" and same_files(fetched, source)
    (fetched / "stale.txt").write_text("left by an earlier fetch")
    assert not (registry.fetch(mv, "artifact", dest) / "stale.txt").exists()
    assert sha256_tree(fetched) == mv.sha256
    # what deploy and the worker's validate run on a registered version
    assert check_files(registry, mv, tmp_path / "scratch") == 2


def test_files_linked_from_a_cache_are_copied_as_files(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    """A Hugging Face cache's snapshot folder links each file to a blob: the registry keeps
    the bytes, not the links."""
    real = huggingface_folder(tmp_path / "blobs")
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for name in tree_files(real):
        (snapshot / name).symlink_to(real / name)
    mv = registry.register("llm", snapshot, Library.HUGGINGFACE, None, None, "alice")
    stored = registry.root / mv.artifact
    assert not any(p.is_symlink() for p in stored.rglob("*"))
    assert same_files(stored, real) and mv.sha256 == sha256_tree(real)


def test_a_vision_model_registers_as_a_file_or_a_folder(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    archive = torchscript_archive(tmp_path / "resnet.pt")
    alone = registry.register("vision", archive, Library.PYTORCH, None, None, "alice")
    assert (alone.artifact, alone.format) == ("files/vision/1/model.pt", "torchscript")
    assert alone.sha256 == sha256_file(archive)
    assert registry.fetch(alone, "artifact", tmp_path / "out").read_bytes() == archive.read_bytes()
    folder = vision_folder(tmp_path / "vit")
    kept = registry.register("vision", folder, Library.PYTORCH, None, None, "alice")
    assert (kept.artifact, kept.sha256) == ("files/vision/2/model", sha256_tree(folder))
    assert same_files(registry.fetch(kept, "artifact", tmp_path / "out2"), folder)


def test_a_broken_folder_registers_nothing(tmp_path: Path, registry: LocalRegistry) -> None:
    folder = huggingface_folder(tmp_path / "llm")
    (folder / "config.json").write_text(json.dumps({"vocab_size": 8}))
    with pytest.raises(InvalidInput, match=r"config\.json: names neither architectures"):
        registry.register("llm", folder, Library.HUGGINGFACE, None, None, "alice")
    assert registry.versions() == []
    assert not (registry.root / "files").exists()


def test_other_libraries_still_refuse_a_folder(tmp_path: Path, registry: LocalRegistry) -> None:
    folder = tmp_path / "sk"
    train_sklearn_regressor(folder)
    with pytest.raises(InvalidInput, match=r"sk: no such file$"):
        registry.register("churn", folder, Library.SKLEARN, None, None, "alice")
    with pytest.raises(NotFound, match="is not registered"):
        registry.get("churn", "1")


def test_a_registered_folder_stages_as_a_folder(tmp_path: Path, registry: LocalRegistry) -> None:
    """What the worker's validate does with it: fetch, then put into the staging bucket."""
    source = huggingface_folder(tmp_path / "llm")
    mv = registry.register("llm", source, Library.HUGGINGFACE, None, None, "alice")
    store = LocalArtifactStore(tmp_path / "buckets")
    fetched = registry.fetch(mv, "artifact", tmp_path / "stage")
    uri = store.put("staging", artifact_key("llm", "1", fetched.name), fetched)
    assert uri == "local://staging/models/llm/1/model/"
    assert sha256_tree(store.local_path(uri)) == mv.sha256


def _variant(name: str, library: Library) -> Variant:
    model, _, version = name.rpartition("-v")
    return Variant(
        name=name,
        model=model,
        version=version,
        library=library,
        artifact=f"local://production/models/{model}/{version}/model/",
        weight=100,
    )


def test_the_embedded_serving_refuses_a_container_model(tmp_path: Path) -> None:
    serving = LocalServing(tmp_path / "ws")
    llm = EndpointConfig(
        name="churn", region="local", variants=[_variant("churn-llm-v1", Library.HUGGINGFACE)]
    )
    with pytest.raises(InvalidInput) as info:
        serving.apply(llm)
    assert str(info.value) == (
        "churn-llm v1 is a huggingface model: only SageMaker serving runs its container "
        "(set backends.serving: sagemaker)"
    )
    shadowed = EndpointConfig(
        name="vision",
        region="local",
        variants=[_variant("vision-v1", Library.ONNX)],
        shadow=ShadowConfig(variant=_variant("vision-v2", Library.PYTORCH)),
    )
    with pytest.raises(InvalidInput, match=r"^vision v2 is a pytorch model: only SageMaker"):
        serving.apply(shadowed)
    assert serving.endpoints() == []  # nothing was written
    serving.close()
