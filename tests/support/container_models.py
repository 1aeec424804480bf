"""Tiny stand-ins of models only a serving container loads, written by hand from their formats:
a Hugging Face folder with safetensors weights, a TorchScript archive (what torch.jit.save
writes), and golden data for them. No torch or transformers needed."""

from __future__ import annotations

import json
import math
import struct
import zipfile
from pathlib import Path
from typing import Any

_WIDTH = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U8": 1}

# A little model: name -> (dtype, shape)
TENSORS: dict[str, tuple[str, list[int]]] = {
    "model.embed_tokens.weight": ("F16", [8, 4]),
    "model.layers.0.mlp.weight": ("F32", [4, 4]),
    "lm_head.weight": ("BF16", [8, 4]),
}


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]], pad: bool = True) -> bytes:
    """A safetensors file: 8-byte little-endian header length, the JSON header (padded with
    spaces to 8 bytes, as the library writes it), then each tensor's bytes in turn."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * _WIDTH[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(i % 251 for i in range(offset))


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]] = TENSORS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(safetensors_bytes(tensors))
    return path


def raw_safetensors(path: Path, header: Any, data: bytes = b"", length: int | None = None) -> Path:
    """A safetensors file with any header (a JSON value, or bytes as they are) and data; the
    length field says `length` when given, else the header's true length."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


def huggingface_folder(folder: Path, sharded: bool = False, bin_weights: bool = False) -> Path:
    """A Hugging Face causal LM folder as TGI or LMI loads it: config, tokenizer, weights (one
    safetensors file, two shards with their index, or a pytorch_model.bin)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 8}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {}}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16}))
    (folder / "generation_config.json").write_text(json.dumps({"max_new_tokens": 8}))
    if bin_weights:
        # torch.save writes a zip; the check reads its first bytes only
        with zipfile.ZipFile(folder / "pytorch_model.bin", "w") as archive:
            archive.writestr("pytorch_model/data.pkl", b"\x80\x02}q\x00.")
        return folder
    if not sharded:
        write_safetensors(folder / "model.safetensors")
        return folder
    names = list(TENSORS)
    shards = {
        "model-00001-of-00002.safetensors": {n: TENSORS[n] for n in names[:2]},
        "model-00002-of-00002.safetensors": {n: TENSORS[n] for n in names[2:]},
    }
    weight_map: dict[str, str] = {}
    for shard, tensors in shards.items():
        write_safetensors(folder / shard, tensors)
        weight_map |= dict.fromkeys(tensors, shard)
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def torchscript_archive(path: Path, top: str | None = None, code: bool = True) -> Path:
    """A zip laid out as torch.jit.save lays it out: every entry under one top folder (the
    archive's name), `data.pkl`, `code/__torch__/...`, `constants.pkl`, `version`. Nothing
    in it is a real pickle: the check never unpickles."""
    path.parent.mkdir(parents=True, exist_ok=True)
    top = top or path.stem
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{top}/data.pkl", b"not unpickled")
        if code:
            archive.writestr(f"{top}/code/__torch__/model.py", "class Model(Module): ...\n")
        archive.writestr(f"{top}/constants.pkl", b"not unpickled")
        archive.writestr(f"{top}/version", "3\n")
        archive.writestr(f"{top}/.data/serialization_id", "1234\n")
    return path


def vision_folder(folder: Path) -> Path:
    """A vision model as a folder: its TorchScript archive and class names."""
    torchscript_archive(folder / "model.pt")
    (folder / "index_to_name.json").write_text(json.dumps({"0": "cat", "1": "dog"}))
    return folder


def container_golden(path: Path, cases: int = 3) -> Path:
    """Golden data of an LLM: prompts in, expected text out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"input": {"inputs": f"What is {i} + {i}?"}, "output": str(i + i)})
        for i in range(cases)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
