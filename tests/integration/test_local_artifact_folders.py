"""The embedded artifact store keeps a folder (a large model's files) under one key, as S3
keeps a prefix: its URI ends in `/`, and put, copy, get, exists, delete and list act on it
whole, on real folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.adapters.local.artifacts import LocalArtifactStore, sha256_tree, tree_files
from core.ports import InvalidInput, NotFound
from tests.support.container_models import huggingface_folder

KEY = "models/llm/1/model"
URI = f"local://staging/{KEY}/"


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "buckets")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return huggingface_folder(tmp_path / "llm")


def leftovers(root: Path) -> list[str]:
    """What a write left beside its result: temporary or set-aside folders and files."""
    return sorted(p.name for p in root.rglob("*") if ".partial" in p.name)


def test_a_folder_is_put_whole_under_a_uri_ending_in_a_slash(
    store: LocalArtifactStore, model: Path
) -> None:
    assert store.put("staging", KEY, model) == URI
    assert store.put("staging", KEY + "/", model) == URI  # the same key, written with its `/`
    stored = store.local_path(URI)
    assert tree_files(stored) == tree_files(model)
    assert sha256_tree(stored) == sha256_tree(model)
    assert store.exists(URI)
    assert not store.exists(URI.rstrip("/"))  # a folder's URI ends in `/`: without it, no file
    assert store.locate(URI) == ("staging", KEY + "/")
    assert leftovers(store.root) == []


def test_putting_the_same_folder_again_changes_nothing(
    store: LocalArtifactStore, model: Path
) -> None:
    store.put("staging", KEY, model)
    before = store.local_path(URI).stat().st_ino
    assert store.put("staging", KEY, model) == URI
    assert store.local_path(URI).stat().st_ino == before  # not written again


def test_a_changed_folder_replaces_the_stored_one_whole(
    store: LocalArtifactStore, model: Path
) -> None:
    store.put("staging", KEY, model)
    (model / "generation_config.json").unlink()
    (model / "config.json").write_text('{"model_type": "llama"}')
    store.put("staging", KEY, model)
    stored = store.local_path(URI)
    assert tree_files(stored) == tree_files(model)  # the removed file is gone there too
    assert (stored / "config.json").read_text() == '{"model_type": "llama"}'
    assert leftovers(store.root) == []


def test_list_names_the_files_of_a_folder_as_s3_lists_a_prefix(
    store: LocalArtifactStore, model: Path
) -> None:
    store.put("staging", KEY, model)
    listed = store.list("staging", "models/llm/")
    assert listed == [f"{URI}{name}" for name in tree_files(model)]
    # a write under way (or one that crashed) is never listed, nor anything inside it
    partial = store.root / "staging" / "models" / "llm" / "1" / ".model.x1.partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    assert store.list("staging", "models/llm/") == listed


def test_a_folder_copies_to_another_bucket_whole(store: LocalArtifactStore, model: Path) -> None:
    store.put("staging", KEY, model)
    copied = store.copy(URI, "production", KEY)
    assert copied == f"local://production/{KEY}/"
    assert sha256_tree(store.local_path(copied)) == sha256_tree(model)
    assert store.copy(URI, "production", KEY) == copied  # again: the same, nothing new
    with pytest.raises(NotFound, match=r"local://staging/models/other/1/model/: no such artifact"):
        store.copy("local://staging/models/other/1/model/", "production", KEY)


def test_a_folder_is_got_into_a_folder_or_at_a_path(
    store: LocalArtifactStore, model: Path, tmp_path: Path
) -> None:
    store.put("staging", KEY, model)
    into = tmp_path / "into"
    into.mkdir()
    got = store.get(URI, into)
    assert got == into / "model" and sha256_tree(got) == sha256_tree(model)
    at = store.get(URI, tmp_path / "at" / "llm")
    assert at == tmp_path / "at" / "llm" and tree_files(at) == tree_files(model)
    assert leftovers(tmp_path / "at") == []
    with pytest.raises(NotFound):
        store.get("local://staging/models/none/model/", into)


def test_a_folder_is_deleted_whole(store: LocalArtifactStore, model: Path) -> None:
    store.put("staging", KEY, model)
    store.put("staging", "models/llm/1/golden.jsonl", model / "config.json")
    assert store.delete(URI) is True
    assert not store.exists(URI)
    assert store.list("staging") == ["local://staging/models/llm/1/golden.jsonl"]
    assert store.delete(URI) is False  # already gone
    store.delete("local://staging/models/llm/1/golden.jsonl")
    assert list(store.root.rglob("*")) == []  # emptied folders went with it


def test_a_folder_needs_files_and_a_key(
    store: LocalArtifactStore, model: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match=r"empty: an empty folder"):
        store.put("staging", KEY, empty)
    with pytest.raises(InvalidInput, match=r"llm: a folder needs a key"):
        store.put("staging", "/", model)
    with pytest.raises(InvalidInput, match="points outside the buckets"):
        store.put("staging", "../../elsewhere", model)


def test_files_keep_working_beside_folders(store: LocalArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "model.joblib"
    src.write_bytes(b"bytes")
    uri = store.put("staging", "models/churn/1/model.joblib", src)
    assert uri == "local://staging/models/churn/1/model.joblib"
    assert store.exists(uri) and not store.exists(uri + "/")
    assert store.get(uri, tmp_path / "copy.joblib").read_bytes() == b"bytes"
    assert store.delete(uri) and not store.delete(uri)
