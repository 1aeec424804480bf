"""Models only a serving container loads are checked by their files: each broken file is
refused with one line naming it and what is wrong; nothing is loaded or unpickled."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from core.checks import check_artifact
from core.container_models import (
    MAX_SAFETENSORS_HEADER,
    artifact_format,
    check_by_files,
    check_container_model,
    safetensors_tensors,
    weights_format,
)
from core.domain import CONTAINER_ONLY, Library
from core.ports import InvalidInput
from core.runtime import detect_format
from tests.support.container_models import (
    TENSORS,
    container_golden,
    huggingface_folder,
    raw_safetensors,
    torchscript_archive,
    vision_folder,
    write_safetensors,
)


def refused(pattern: str, call: Callable[[], object]) -> str:
    with pytest.raises(InvalidInput) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    assert re.search(pattern, message), message
    return message


# ---------------------------------------------------------------- the rule's one home


def test_the_container_libraries_are_the_ones_only_their_container_loads() -> None:
    only = {lib for lib in Library if lib.container_only}
    assert only == CONTAINER_ONLY == {Library.HUGGINGFACE, Library.PYTORCH}


def test_the_runtime_refuses_to_load_a_container_model(tmp_path: Path) -> None:
    archive = torchscript_archive(tmp_path / "model.pt")
    refused(
        r"model\.pt: not a loadable pytorch model \(only its serving container loads",
        lambda: detect_format(archive, Library.PYTORCH),
    )


# ---------------------------------------------------------------- huggingface: valid


@pytest.mark.parametrize(
    ("sharded", "bin_weights", "fmt"),
    [(False, False, "safetensors"), (True, False, "safetensors"), (False, True, "bin")],
    ids=["one-file", "sharded", "bin"],
)
def test_a_huggingface_folder_passes_with_its_weights_format(
    tmp_path: Path, sharded: bool, bin_weights: bool, fmt: str
) -> None:
    folder = huggingface_folder(tmp_path / "llm", sharded=sharded, bin_weights=bin_weights)
    assert check_container_model(folder, Library.HUGGINGFACE) == fmt
    assert artifact_format(folder, Library.HUGGINGFACE) == fmt


def test_the_safetensors_header_names_the_tensors(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "model.safetensors")
    assert safetensors_tensors(path) == set(TENSORS)


def test_a_tensor_of_an_unknown_dtype_is_checked_by_its_offsets_only(tmp_path: Path) -> None:
    header = {"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}
    path = raw_safetensors(tmp_path / "model.safetensors", header, b"\x00\x00")
    assert safetensors_tensors(path) == {"w"}


def test_the_weights_are_never_read_only_the_headers(tmp_path: Path) -> None:
    """A data section of 2 GiB (a sparse file: nothing written) checks like a tiny one."""
    size = 1 << 31
    header = {"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}
    folder = huggingface_folder(tmp_path / "big")
    path = raw_safetensors(folder / "model.safetensors", header)
    with path.open("r+b") as fh:
        fh.truncate(path.stat().st_size + size)
    assert check_container_model(folder, Library.HUGGINGFACE) == "safetensors"


# ---------------------------------------------------------------- huggingface: broken

Breaker = Callable[[Path], Path]  # breaks a valid folder, returns the artifact to check


def _rewrite(name: str, content: str | bytes) -> Breaker:
    def breaker(folder: Path) -> Path:
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)
        return folder

    return breaker


def _remove(*names: str) -> Breaker:
    def breaker(folder: Path) -> Path:
        for name in names:
            (folder / name).unlink()
        return folder

    return breaker


def _weights(header: object, data: bytes = b"", length: int | None = None) -> Breaker:
    def breaker(folder: Path) -> Path:
        raw_safetensors(folder / "model.safetensors", header, data, length)
        return folder

    return breaker


def _f32(offsets: list[int], shape: list[int]) -> dict[str, object]:
    return {"w": {"dtype": "F32", "shape": shape, "data_offsets": offsets}}


HF_BROKEN: dict[str, tuple[Breaker, str]] = {
    "a file": (lambda f: f / "config.json", r"config\.json: a huggingface model is a folder"),
    "missing": (lambda f: f / "nowhere", r"nowhere: no such folder"),
    "no config": (_remove("config.json"), r"llm: no config\.json"),
    "config not JSON": (
        _rewrite("config.json", "{architectures: x"),
        r"config\.json: not JSON \(Expecting property name .* at line 1 column 2\)",
    ),
    "config a list": (
        _rewrite("config.json", "[]"),
        r"config\.json: expected a JSON object, got a list",
    ),
    "config names nothing": (
        _rewrite("config.json", '{"vocab_size": 8}'),
        r"config\.json: names neither architectures nor model_type",
    ),
    "architectures not names": (
        _rewrite("config.json", '{"architectures": "Llama"}'),
        r"config\.json: architectures is not a list of class names",
    ),
    "no weights": (
        _remove("model.safetensors"),
        r"llm: no weights \(\*\.safetensors or pytorch_model\*\.bin\)",
    ),
    "too short": (
        _rewrite("model.safetensors", b"\x10\x00"),
        r"model\.safetensors: too short for a safetensors header \(2 bytes\)",
    ),
    "header past the end": (
        _weights({"w": {}}, length=4096),
        r"model\.safetensors: safetensors header of 4096 bytes runs past the end",
    ),
    "insane header length": (
        _weights({}, length=MAX_SAFETENSORS_HEADER + 1),
        r"model\.safetensors: not a safetensors file \(header length 100000001\)",
    ),
    "header not JSON": (
        _weights(b"{not json}"),
        r"model\.safetensors: safetensors header is not JSON",
    ),
    "header not UTF-8": (
        _weights(b'{"\xff": 1}'),
        r"model\.safetensors: safetensors header is not JSON",
    ),
    "header a list": (_weights([1, 2]), r"safetensors header is not a JSON object"),
    "no tensors": (_weights({"__metadata__": {}}), r"model\.safetensors: holds no tensors"),
    "offsets past the data": (
        _weights(_f32([0, 16], [4]), bytes(8)),
        r"model\.safetensors: tensor 'w' data_offsets \[0, 16\] lie outside the data "
        r"section \(8 bytes\)",
    ),
    "offsets reversed": (
        _weights(_f32([8, 0], [0]), bytes(8)),
        r"tensor 'w' data_offsets \[8, 0\] lie outside",
    ),
    "size against shape": (
        _weights(_f32([0, 8], [4]), bytes(8)),
        r"tensor 'w' is F32 of shape \[4\] \(16 bytes\) but its data_offsets hold 8",
    ),
    "no offsets": (
        _weights({"w": {"dtype": "F32", "shape": [1]}}, bytes(4)),
        r"tensor 'w' has no data_offsets",
    ),
    "bad shape": (
        _weights({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4)),
        r"tensor 'w' has no shape",
    ),
    "no tokenizer": (
        _remove("tokenizer.json", "tokenizer_config.json"),
        r"llm: no tokenizer \(tokenizer\.json, tokenizer\.model or tokenizer_config\.json\)",
    ),
    "tokenizer config not JSON": (
        _rewrite("tokenizer_config.json", "nope"),
        r"tokenizer_config\.json: not JSON",
    ),
    "bin not a checkpoint": (
        lambda f: _remove("model.safetensors")(_rewrite("pytorch_model.bin", "text")(f)),
        r"pytorch_model\.bin: not a PyTorch checkpoint",
    ),
}


@pytest.mark.parametrize("case", sorted(HF_BROKEN))
def test_a_broken_huggingface_folder_is_refused_in_one_line(tmp_path: Path, case: str) -> None:
    breaker, pattern = HF_BROKEN[case]
    artifact = breaker(huggingface_folder(tmp_path / "llm"))
    message = refused(pattern, lambda: check_container_model(artifact, Library.HUGGINGFACE))
    assert str(tmp_path) in message  # names the file (or folder) by its path


def _index(weight_map: object) -> Breaker:
    def breaker(folder: Path) -> Path:
        text = json.dumps({"weight_map": weight_map})
        (folder / "model.safetensors.index.json").write_text(text)
        return folder

    return breaker


SHARD1, SHARD2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"

INDEX_BROKEN: dict[str, tuple[Breaker, str]] = {
    "missing shard": (
        _remove(SHARD2),
        rf"model\.safetensors\.index\.json: weight_map names {SHARD2}, which is not in the folder",
    ),
    "tensor elsewhere": (
        _index({"lm_head.weight": SHARD1}),
        rf"weight_map puts 'lm_head\.weight' in {SHARD1}, which does not hold it",
    ),
    "outside the folder": (
        _index({"lm_head.weight": "../x.safetensors"}),
        r"weight_map names '\.\./x\.safetensors', outside the folder",
    ),
    "no weight_map": (_index([]), r"index\.json: no weight_map"),
    "index not JSON": (
        _rewrite("model.safetensors.index.json", "{"),
        r"model\.safetensors\.index\.json: not JSON",
    ),
    "bad shard": (
        _rewrite(SHARD2, b"\x00" * 8),
        rf"{SHARD2}: not a safetensors file \(header length 0\)",
    ),
}


@pytest.mark.parametrize("case", sorted(INDEX_BROKEN))
def test_a_sharded_folder_with_a_broken_index_is_refused(tmp_path: Path, case: str) -> None:
    breaker, pattern = INDEX_BROKEN[case]
    artifact = breaker(huggingface_folder(tmp_path / "llm", sharded=True))
    refused(pattern, lambda: check_container_model(artifact, Library.HUGGINGFACE))


def test_a_bin_index_names_files_that_must_be_there(tmp_path: Path) -> None:
    folder = huggingface_folder(tmp_path / "llm", bin_weights=True)
    index = {"weight_map": {"lm_head.weight": "pytorch_model-00002-of-00002.bin"}}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    refused(
        r"pytorch_model\.bin\.index\.json: weight_map names pytorch_model-00002-of-00002\.bin, "
        "which is not in the folder",
        lambda: check_container_model(folder, Library.HUGGINGFACE),
    )


# ---------------------------------------------------------------- pytorch


def test_a_torchscript_archive_passes_alone_or_in_its_folder(tmp_path: Path) -> None:
    archive = torchscript_archive(tmp_path / "resnet.pt")
    assert check_container_model(archive, Library.PYTORCH) == "torchscript"
    assert check_container_model(vision_folder(tmp_path / "vit"), Library.PYTORCH) == "torchscript"
    bare = tmp_path / "bare"
    torchscript_archive(bare / "model.pt")
    assert check_container_model(bare, Library.PYTORCH) == "torchscript"  # names are optional


def _zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"x")
    return path


PT_BROKEN: dict[str, tuple[Callable[[Path], Path], str]] = {
    "not a zip": (
        lambda d: _rewrite("model.pt", b"\x80\x02}q\x00.")(d) / "model.pt",
        r"model\.pt: not a TorchScript archive \(not a zip file\)",
    ),
    "torch.save, not jit": (
        lambda d: torchscript_archive(d / "model.pt", code=False),
        r"model\.pt: not a TorchScript archive \(no model/code/: saved by torch\.save",
    ),
    "no data.pkl": (
        lambda d: _zip(d / "model.pt", ["model/code/__torch__/m.py", "model/version"]),
        r"model\.pt: not a TorchScript archive \(no model/data\.pkl\)",
    ),
    "two top folders": (
        lambda d: _zip(d / "model.pt", ["a/data.pkl", "b/code/x.py"]),
        r"not a TorchScript archive \(2 top folders; expected one\)",
    ),
    "empty zip": (lambda d: _zip(d / "model.pt", []), r"\(no entries; expected one\)"),
    "wrong name": (
        lambda d: torchscript_archive(d / "model.zip"),
        r"model\.zip: a TorchScript archive is named \*\.pt",
    ),
    "folder without archive": (
        lambda d: _remove("model.pt")(vision_folder(d / "vit")),
        r"vit: no TorchScript archive \(\*\.pt\) in the folder",
    ),
    "folder with two archives": (
        lambda d: torchscript_archive(vision_folder(d / "vit") / "other.pt").parent,
        r"vit: 2 TorchScript archives \(model\.pt, other\.pt\); expected one",
    ),
    "names not an object": (
        lambda d: _rewrite("index_to_name.json", '["cat", "dog"]')(vision_folder(d / "vit")),
        r"index_to_name\.json: expected a JSON object, got a list",
    ),
    "missing": (lambda d: d / "gone.pt", r"gone\.pt: cannot read it"),
}


@pytest.mark.parametrize("case", sorted(PT_BROKEN))
def test_a_broken_torchscript_model_is_refused_in_one_line(tmp_path: Path, case: str) -> None:
    build, pattern = PT_BROKEN[case]
    artifact = build(tmp_path)
    message = refused(pattern, lambda: check_container_model(artifact, Library.PYTORCH))
    assert str(tmp_path) in message


# ---------------------------------------------------------------- with golden data


def test_golden_data_is_parsed_and_counted_not_run(tmp_path: Path) -> None:
    folder = huggingface_folder(tmp_path / "llm")
    golden = container_golden(tmp_path / "golden.jsonl", cases=4)
    assert check_by_files(folder, Library.HUGGINGFACE, golden) == 4
    assert check_by_files(folder, Library.HUGGINGFACE, None) == 0
    golden.write_text('{"input": {"inputs": "hi"}}\n')
    refused(
        r"golden\.jsonl: line 1: missing key 'output'",
        lambda: check_by_files(folder, Library.HUGGINGFACE, golden),
    )


def test_check_artifact_checks_a_container_model_by_its_files(tmp_path: Path) -> None:
    """No child process: a scratch folder that cannot exist would fail one that ran."""
    scratch = tmp_path / "file" / "scratch"
    (tmp_path / "file").write_text("")
    golden = container_golden(tmp_path / "golden.jsonl", cases=2)
    folder = huggingface_folder(tmp_path / "llm")
    assert check_artifact(folder, Library.HUGGINGFACE, golden, scratch) == 2
    archive = torchscript_archive(tmp_path / "vision" / "model.pt")
    assert check_artifact(archive, Library.PYTORCH, golden, scratch) == 2
    assert check_artifact(archive.parent, Library.PYTORCH, None, scratch) == 0
    refused(
        r"llm: no config\.json",
        lambda: check_artifact(
            _remove("config.json")(folder), Library.HUGGINGFACE, golden, scratch
        ),
    )
    refused(r"gone: no such file or folder", lambda: check_artifact(
        tmp_path / "gone", Library.PYTORCH, None, scratch
    ))  # fmt: skip


def test_a_folder_of_another_library_is_refused_as_today(tmp_path: Path) -> None:
    folder = huggingface_folder(tmp_path / "llm")
    refused(
        r"llm: no such file$",
        lambda: check_artifact(folder, Library.SKLEARN, None, tmp_path / "scratch"),
    )


def test_the_weights_format_is_told_by_file_names_alone() -> None:
    """For a registry that lists a folder's files (Comet) before sending them."""
    assert weights_format(["config.json", "model-00001-of-00002.safetensors"]) == "safetensors"
    assert weights_format(n for n in ["pytorch_model.bin", "model.safetensors"]) == "safetensors"
    assert weights_format(iter(["config.json", "pytorch_model-00001.bin"])) == "bin"
    assert weights_format(["config.json", "model.bin", "tokenizer.json"]) is None
