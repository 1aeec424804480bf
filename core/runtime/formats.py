"""The artifact formats each model library takes, and telling a file's format before loading it.

`detect_format` is how the standard runtime (`core.runtime.loaders`) and the
local registry learn what a file holds before anything unpickles it. A library
that only its serving container loads (`Library.container_only`) is told by
its files in `core.container_models`, never here.
"""

from __future__ import annotations

from pathlib import Path

from core.domain import Library
from core.ports import InvalidInput

__all__ = ["FORMATS", "detect_format", "library_named", "unloadable"]

# Formats each library accepts, in the order they are offered in messages.
FORMATS: dict[Library, tuple[str, ...]] = {
    Library.SKLEARN: ("joblib", "pickle"),
    Library.XGBOOST: ("json", "ubj", "joblib", "pickle"),
    Library.ONNX: ("onnx",),
    # told by core.container_models, from the files: the runtime never loads these
    Library.HUGGINGFACE: ("safetensors", "bin"),
    Library.PYTORCH: ("torchscript",),
}

_SUFFIXES = {
    ".joblib": "joblib",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".json": "json",
    ".ubj": "ubj",
    ".onnx": "onnx",
}

# joblib compresses with one of these; a plain pickle (protocol 2+) starts with 0x80.
_COMPRESSED_MAGIC = (
    b"\x78\x01",
    b"\x78\x5e",
    b"\x78\x9c",
    b"\x78\xda",  # zlib
    b"\x1f\x8b",  # gzip
    b"BZh",  # bz2
    b"\xfd7zXZ\x00",  # xz
    b"\x5d\x00\x00",  # lzma
    b"\x04\x22\x4d\x18",  # lz4
)

_CONTENT = {"pickle": "a pickle", "joblib": "compressed joblib", "json": "JSON", "ubj": "UBJSON"}

# A UBJSON object opens with `{` and then the type marker of its first key's length.
_UBJ_KEY_MARKERS = b"iUIlL$#"


def library_named(value: Library | str) -> Library:
    """The library named `value`; InvalidInput naming the known ones when there is none.

    The runtime's message names the libraries it loads itself; a container-only one is
    still a library here, and `detect_format` says why it does not load."""
    try:
        return Library(value)
    except ValueError:
        known = ", ".join(lib.value for lib in Library if not lib.container_only)
        raise InvalidInput(f"unknown model library {value!r} (known: {known})") from None


def unloadable(path: Path, library: Library, reason: str) -> InvalidInput:
    """The one wording of a file that is not a model of `library`."""
    return InvalidInput(f"{path}: not a loadable {library} model ({reason})")


# ---------------------------------------------------------------- format


def _sniff(head: bytes) -> str | None:
    """The format the first bytes show, when they show one."""
    if head.startswith(b"\x80"):
        return "pickle"
    if head.startswith(_COMPRESSED_MAGIC):
        return "joblib"
    text = head.lstrip(b" \t\r\n")
    if text.startswith(b"{"):
        rest = text[1:].lstrip(b" \t\r\n")
        if rest[:1] in (b'"', b"}"):
            return "json"
        if text[1:2] and text[1:2] in _UBJ_KEY_MARKERS:
            return "ubj"
    return None


def detect_format(path: Path, library: Library | str) -> str:
    """The artifact's format: "joblib", "pickle", "json", "ubj" or "onnx".

    The suffix names it and the first bytes confirm it (a compressed pickle
    is joblib whatever its name); with an unknown suffix the content alone
    decides. Raises InvalidInput when the file cannot be read, the name and
    the content disagree, or `library` does not take that format, and for a
    library only its serving container loads.
    """
    lib = library_named(library)
    if lib.container_only:
        raise unloadable(path, lib, f"only its serving container loads a {lib} model")
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise unloadable(path, lib, exc.strerror or type(exc).__name__) from exc
    if not head:
        raise unloadable(path, lib, "the file is empty")
    sniffed = _sniff(head)
    named = _SUFFIXES.get(path.suffix.lower())
    pickled = {"joblib", "pickle"}
    if named in pickled and sniffed in pickled:
        fmt = "joblib" if sniffed == "joblib" else named
    elif named is not None:
        if sniffed is not None and sniffed != named:
            raise unloadable(
                path, lib, f"named {path.suffix} but the content is {_CONTENT[sniffed]}"
            )
        fmt = named
    elif sniffed is not None:
        fmt = sniffed
    elif head[:1] == b"\x08":
        # An ONNX ModelProto opens with its ir_version field (tag 0x08).
        fmt = "onnx"
    else:
        raise unloadable(
            path,
            lib,
            "cannot tell the format from the name or content; expected "
            + ", ".join(suffix for suffix, f in _SUFFIXES.items() if f in FORMATS[lib]),
        )
    if fmt not in FORMATS[lib]:
        raise unloadable(path, lib, f"{lib} takes {' or '.join(FORMATS[lib])}, not {fmt}")
    return fmt
