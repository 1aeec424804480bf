"""Models that only their serving container loads (`Library.container_only`): an open LLM as
a Hugging Face folder (what LLM servers such as TGI or LMI load), a vision model as a
TorchScript archive.

mmm's runtime cannot load them, so a version is checked by its files: the files a server
needs are there and well formed, read by their headers only (a 10 GB folder checks in
milliseconds). Nothing here loads weights or unpickles anything. Their golden data is parsed
and counted here, and checked against the endpoint once it serves.

Every refusal is one InvalidInput line naming the file and what is wrong with it.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase as fnmatch
from pathlib import Path, PurePosixPath
from typing import Any

from core.domain import Library
from core.ports import InvalidInput

__all__ = [
    "MAX_SAFETENSORS_HEADER",
    "artifact_format",
    "check_by_files",
    "check_container_model",
    "check_present",
    "safetensors_tensors",
    "weights_format",
]

# The safetensors library refuses a longer header; a length beyond it is a damaged file.
MAX_SAFETENSORS_HEADER = 100_000_000

# Bytes per element of the safetensors dtypes of a whole number of bytes; a dtype not named
# here (a newer or sub-byte one) has its offsets checked but not its size.
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip

_CONFIG = "config.json"
_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_TOKENIZERS = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
_LABELS = "index_to_name.json"  # a vision model's class names (TorchServe's convention)


def _bad(path: Path, reason: str) -> InvalidInput:
    return InvalidInput(f"{path}: {reason}")


# ---------------------------------------------------------------- entry points


def check_present(artifact: Path, library: Library) -> None:
    """The artifact is there: a file, or for a container-only library a file or a folder.
    Raises InvalidInput "<path>: no such file" otherwise, for a folder of another library too."""
    if Library(library).container_only:
        if not (artifact.is_file() or artifact.is_dir()):
            raise _bad(artifact, "no such file or folder")
    elif not artifact.is_file():
        raise _bad(artifact, "no such file")


def check_container_model(artifact: Path, library: Library) -> str:
    """Check a container-only library's artifact by its files; returns the format to record
    on the version: "safetensors" or "bin" (huggingface), "torchscript" (pytorch)."""
    lib = Library(library)
    if lib is Library.HUGGINGFACE:
        return _check_huggingface(artifact)
    if lib is Library.PYTORCH:
        return _check_torchscript(artifact)
    raise ValueError(f"{lib} is loaded by mmm's runtime, not checked by its files")


def check_by_files(artifact: Path, library: Library, golden: Path | None) -> int:
    """`core.checks.check_artifact` for a container-only library: the artifact's files are
    checked and the golden data parsed, nothing runs; returns the number of golden cases
    (0 without golden data). Raises InvalidInput with a one-line reason."""
    from core.runtime.golden import read_golden

    check_present(artifact, library)
    check_container_model(artifact, library)
    return len(read_golden(golden)) if golden is not None else 0


def artifact_format(artifact: Path, library: Library) -> str:
    """The format to record on a version of any library: a container-only library's from its
    checked files, any other's from the file (`core.runtime.formats.detect_format`)."""
    if Library(library).container_only:
        return check_container_model(artifact, library)
    from core.runtime.formats import detect_format

    return detect_format(artifact, library)


# ---------------------------------------------------------------- JSON files


_KINDS = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def _parsed(raw: bytes) -> Any:
    """The JSON value of `raw`; ValueError with a short reason when it is not JSON."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # bytes in no encoding JSON allows
        raise ValueError(str(exc)) from None


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; InvalidInput for an unreadable file, bad JSON or another
    JSON value."""
    try:
        data = _parsed(path.read_bytes())
    except OSError as exc:
        raise _bad(path, f"cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise _bad(path, f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _bad(path, f"expected a JSON object, got {_KINDS.get(type(data), 'null')}")
    return data


# ---------------------------------------------------------------- huggingface


def _check_huggingface(folder: Path) -> str:
    if not folder.exists():
        raise _bad(folder, "no such folder")
    if not folder.is_dir():
        raise _bad(folder, "a huggingface model is a folder (config.json, weights, a tokenizer)")
    _check_config(folder)
    fmt, tensors = _check_weights(folder)
    _check_indexes(folder, tensors)
    _check_tokenizer(folder)
    return fmt


def _check_config(folder: Path) -> None:
    path = folder / _CONFIG
    if not path.is_file():
        raise _bad(folder, f"no {_CONFIG} (a huggingface model folder has one)")
    config = _json_object(path)
    architectures, model_type = config.get("architectures"), config.get("model_type")
    if architectures is None and model_type is None:
        raise _bad(path, "names neither architectures nor model_type")
    if architectures is not None and not (
        isinstance(architectures, list)
        and architectures
        and all(isinstance(a, str) and a for a in architectures)
    ):
        raise _bad(path, "architectures is not a list of class names")
    if model_type is not None and not (isinstance(model_type, str) and model_type):
        raise _bad(path, "model_type is not a name")


# The weight files of a Hugging Face folder, by format, in the order servers take them when
# a folder holds both.
_WEIGHTS = {"safetensors": "*.safetensors", "bin": "pytorch_model*.bin"}


def weights_format(names: Iterable[str]) -> str | None:
    """The weights' format of a Hugging Face folder whose files (at its top) are `names`, or
    None without weights: for a registry that lists a folder's files without sending them."""
    listed = list(names)  # looked through once per format
    return next(
        (fmt for fmt, pattern in _WEIGHTS.items() if any(fnmatch(n, pattern) for n in listed)),
        None,
    )


def _check_weights(folder: Path) -> tuple[str, dict[str, set[str]]]:
    """The weights' format, and the tensors each safetensors file holds (by file name)."""
    safetensors = sorted(p for p in folder.glob(_WEIGHTS["safetensors"]) if p.is_file())
    bins = sorted(p for p in folder.glob(_WEIGHTS["bin"]) if p.is_file())
    if not safetensors and not bins:
        raise _bad(folder, "no weights (*.safetensors or pytorch_model*.bin)")
    tensors = {path.name: safetensors_tensors(path) for path in safetensors}
    for path in bins:
        _check_bin(path)
    # Servers take safetensors over .bin when a folder holds both.
    return ("safetensors" if safetensors else "bin"), tensors


def safetensors_tensors(path: Path) -> set[str]:
    """The names of the tensors in a safetensors file, from its header alone: an 8-byte
    little-endian length, then that many bytes of JSON, then the data section. Every
    tensor's `data_offsets` lie within the data section and hold as many bytes as its dtype
    and shape need. Raises InvalidInput naming the file and what is wrong."""
    header, data_size = _safetensors_header(path)
    names = set()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        _check_tensor(path, name, info, data_size)
        names.add(name)
    if not names:
        raise _bad(path, "holds no tensors")
    return names


def _safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The header's JSON object and the size of the data section after it."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise _bad(path, f"too short for a safetensors header ({size} bytes)")
            length = int.from_bytes(prefix, "little")
            if length == 0 or length > MAX_SAFETENSORS_HEADER:
                raise _bad(path, f"not a safetensors file (header length {length})")
            if 8 + length > size:
                raise _bad(
                    path, f"safetensors header of {length} bytes runs past the end ({size} bytes)"
                )
            raw = fh.read(length)
    except OSError as exc:
        raise _bad(path, f"cannot read it ({exc.strerror})") from None
    try:
        header = _parsed(raw)
    except ValueError as exc:  # bad UTF-8 or bad JSON
        raise _bad(path, f"safetensors header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _bad(path, "safetensors header is not a JSON object")
    return header, size - 8 - length


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_tensor(path: Path, name: str, info: Any, data_size: int) -> None:
    where = f"tensor {name!r}"
    if not isinstance(info, dict):
        raise _bad(path, f"{where} is not described by an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str):
        raise _bad(path, f"{where} has no dtype")
    if not (isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape)):
        raise _bad(path, f"{where} has no shape (a list of sizes)")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_int, offsets))):
        raise _bad(path, f"{where} has no data_offsets [begin, end]")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise _bad(
            path,
            f"{where} data_offsets [{begin}, {end}] lie outside the data section "
            f"({data_size} bytes)",
        )
    width = _DTYPE_BYTES.get(dtype)
    if width is not None and math.prod(shape) * width != end - begin:
        raise _bad(
            path,
            f"{where} is {dtype} of shape {shape} ({math.prod(shape) * width} bytes) but its "
            f"data_offsets hold {end - begin}",
        )


def _check_bin(path: Path) -> None:
    """A PyTorch checkpoint is a zip archive (torch.save since 1.6) or, older, a pickle: told
    by its first bytes, never unpickled."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise _bad(path, f"cannot read it ({exc.strerror})") from None
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        raise _bad(path, "not a PyTorch checkpoint (neither a zip archive nor a pickle)")


def _check_indexes(folder: Path, tensors: dict[str, set[str]]) -> None:
    for name in _INDEXES:
        if (folder / name).exists():
            _check_index(folder, folder / name, tensors)


def _check_index(folder: Path, index: Path, tensors: dict[str, set[str]]) -> None:
    """Every file the index's `weight_map` names is in the folder, and a safetensors file
    holds each tensor the map puts in it."""
    weight_map = _json_object(index).get("weight_map")
    if not (
        isinstance(weight_map, Mapping)
        and weight_map
        and all(isinstance(v, str) for v in weight_map.values())
    ):
        raise _bad(index, "no weight_map (an object of tensor name to file name)")
    for tensor, shard in weight_map.items():
        rel = PurePosixPath(shard)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise _bad(index, f"weight_map names {shard!r}, outside the folder")
        if not (folder / rel).is_file():
            raise _bad(index, f"weight_map names {shard}, which is not in the folder")
        if rel.suffix == ".safetensors":
            if shard not in tensors:  # in a sub-folder: not read with the others
                tensors[shard] = safetensors_tensors(folder / rel)
            if tensor not in tensors[shard]:
                raise _bad(index, f"weight_map puts {tensor!r} in {shard}, which does not hold it")


def _check_tokenizer(folder: Path) -> None:
    if not any((folder / name).is_file() for name in _TOKENIZERS):
        raise _bad(folder, f"no tokenizer ({', '.join(_TOKENIZERS[:-1])} or {_TOKENIZERS[-1]})")
    if (folder / "tokenizer_config.json").is_file():
        _json_object(folder / "tokenizer_config.json")


# ---------------------------------------------------------------- pytorch


def _check_torchscript(artifact: Path) -> str:
    """A TorchScript archive, alone or as the one `*.pt` of a folder (which may hold class
    names in index_to_name.json, and anything else its server reads)."""
    if not artifact.is_dir():
        _check_archive(artifact)
        return "torchscript"
    archives = sorted(p for p in artifact.glob("*.pt") if p.is_file())
    if not archives:
        raise _bad(artifact, "no TorchScript archive (*.pt) in the folder")
    if len(archives) > 1:
        names = ", ".join(p.name for p in archives)
        raise _bad(artifact, f"{len(archives)} TorchScript archives ({names}); expected one")
    _check_archive(archives[0])
    if (artifact / _LABELS).exists():
        _json_object(artifact / _LABELS)
    return "torchscript"


def _check_archive(path: Path) -> None:
    """What torch.jit.save writes: a zip whose entries share one top folder, which holds
    `data.pkl` and the model's code under `code/`. Only the zip's directory is read."""
    if path.suffix.lower() != ".pt":
        raise _bad(path, "a TorchScript archive is named *.pt")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        raise _bad(path, "not a TorchScript archive (not a zip file)") from None
    except OSError as exc:
        raise _bad(path, f"cannot read it ({exc.strerror})") from None
    tops = sorted({name.split("/", 1)[0] for name in names})
    if len(tops) != 1:
        found = f"{len(tops)} top folders" if tops else "no entries"
        raise _bad(path, f"not a TorchScript archive ({found}; expected one)")
    top = tops[0]
    if f"{top}/data.pkl" not in names:
        raise _bad(path, f"not a TorchScript archive (no {top}/data.pkl)")
    if not any(name.startswith(f"{top}/code/") for name in names):
        raise _bad(
            path,
            f"not a TorchScript archive (no {top}/code/: saved by torch.save, not torch.jit.save?)",
        )
