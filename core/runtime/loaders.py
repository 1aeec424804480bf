"""The standard model runtime: load a model file of a supported library and predict with it.

There is no code per model. An artifact is one file in a format its library
writes, and every loaded model answers `predict(instances)` the same way:

- an instance is a feature vector (a list of numbers, in training order) or an
  object mapping feature names to values; `None` stands for a missing value;
- the answer is one plain JSON-able value per instance: a float for a
  regressor, the label (int or str) for a classifier, a list when the model
  gives several values per instance.

Supported artifacts:

- sklearn: a joblib or pickle file of a fitted estimator (any object with
  `predict`, pipelines too);
- xgboost: `.json` or `.ubj` written by `save_model` (of a Booster, an
  XGBRegressor or an XGBClassifier), or a joblib or pickle file of an xgboost
  estimator or Booster;
- onnx: `.onnx` with one `[batch, features]` input of float, double or int64;
  the first output is the answer (the label, for skl2onnx classifiers).

A native xgboost file does not say whether it came from a classifier, so the
objective decides: `binary:logistic` answers label 1 when the probability is
above 0.5 (else 0), `binary:logitraw` label 1 when the margin is above 0,
`binary:hinge` and `multi:softmax` the predicted class, `multi:softprob` the
class of highest probability (as `XGBClassifier.predict` does); any other
objective answers the raw prediction as a float. Nothing is stored beside
the file.

Named features need a recorded order: `feature_names_in_` (sklearn), the
booster's `feature_names` (xgboost) or a `feature_names` entry in the ONNX
model's metadata (a JSON list, or names separated by commas). A model without
one accepts lists only.

Joblib and pickle files run code when loaded: load only artifacts from a
trusted registry.
"""

from __future__ import annotations

import json
import math
import numbers
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from core.domain import Library
from core.ports import InvalidInput

__all__ = [
    "FORMATS",
    "LoadedModel",
    "Predictor",
    "clear_cache",
    "describe_kind",
    "detect_format",
    "load_model",
    "load_model_cached",
]

# Formats each library accepts, in the order they are offered in messages.
FORMATS: dict[Library, tuple[str, ...]] = {
    Library.SKLEARN: ("joblib", "pickle"),
    Library.XGBOOST: ("json", "ubj", "joblib", "pickle"),
    Library.ONNX: ("onnx",),
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

_ONNX_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
}

# xgboost objectives whose raw prediction is turned into a class label.
_THRESHOLDS = {"binary:logistic": 0.5, "binary:logitraw": 0.0}
_CLASS_OUTPUTS = {"binary:hinge", "multi:softmax"}


class ModelFailed(InvalidInput):
    """The model itself raised while predicting (the instances fitted it)."""


class Predictor(Protocol):
    """Anything that turns instances into predictions, one JSON-able value each."""

    library: Library

    def predict(self, instances: list[Any]) -> list[Any]:
        """Raises InvalidInput with a one-line reason when the instances do not fit the model."""
        ...


def describe_kind(value: Any) -> str:
    """The JSON kind of a value with its article, for messages: "a number", "null", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool | np.bool_):
        return "a boolean"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple | np.ndarray):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0].strip() if text else ""
    line = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


_PLAIN_FEATURE_TYPES = frozenset({float, int, bool, type(None)})


def _is_feature_value(value: Any) -> bool:
    # The exact-type test first: an ABC isinstance check costs ten times more per cell.
    return type(value) in _PLAIN_FEATURE_TYPES or isinstance(value, np.bool_ | numbers.Real)


_STRINGS = "string values"


def _odd_value(value: Any) -> str | None:
    """What a model may refuse in a feature value that `_matrix` lets through."""
    if value is None:
        return "null values"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "null values"  # NaN is how a missing value reaches the model
        if math.isinf(value):
            return "infinite values"
    if isinstance(value, str):
        return _STRINGS
    return None


class _Unloadable(Exception):
    """Why a file is not a model of its library; load_model words the message."""


def _library(value: Library | str) -> Library:
    try:
        return Library(value)
    except ValueError:
        known = ", ".join(lib.value for lib in Library)
        raise InvalidInput(f"unknown model library {value!r} (known: {known})") from None


def _unloadable(path: Path, library: Library, reason: str) -> InvalidInput:
    return InvalidInput(f"{path}: not a loadable {library} model ({reason})")


class LoadedModel:
    """A model file loaded by the standard runtime; subclasses know how to run one kind.

    `n_features` and `feature_names` are what the file records (None when it
    does not). `predict` is safe to call from several threads at once.
    """

    def __init__(
        self,
        path: Path,
        library: Library,
        format: str,
        *,
        n_features: int | None,
        feature_names: list[str] | None,
        dtype: Any = np.float64,
        accepts_strings: bool = False,
    ) -> None:
        self.path = path
        self.library = library
        self.format = format
        self.n_features = n_features
        self.feature_names = feature_names
        self._feature_set = frozenset(feature_names or ())
        self._dtype = dtype
        self._accepts_strings = accepts_strings

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.library} {self.format} {self.path.name}>"

    def predict(self, instances: list[Any]) -> list[Any]:
        if not isinstance(instances, list):
            raise self._bad(f"instances must be a list, not {describe_kind(instances)}")
        if not instances:
            return []
        matrix = self._matrix(instances)
        try:
            raw = self._run(matrix)
        except Exception as exc:  # whatever the library raises, the caller gets one line
            fault = self._refused_value(instances)
            if fault is not None:  # the caller's error, not the model's
                i, j, kind = fault
                raise self._bad(
                    f"instance {i} has {kind} the model does not accept, first at "
                    f"{self._feature(j)}: {_one_line(exc)}"
                ) from exc
            raise ModelFailed(f"{self.path.name}: predict failed: {_one_line(exc)}") from exc
        outputs = [_jsonable(row) for row in raw]
        if len(outputs) != len(instances):
            raise self._bad(
                f"the model gave {len(outputs)} predictions for {len(instances)} instances"
            )
        return outputs

    def _run(self, matrix: npt.NDArray[Any]) -> Any:
        raise NotImplementedError

    def _bad(self, reason: str) -> InvalidInput:
        # The file name, not its path: this reaches callers of an endpoint.
        return InvalidInput(f"{self.path.name}: {reason}")

    def _feature(self, index: int) -> str:
        if self.feature_names is not None and index < len(self.feature_names):
            return f"feature {index} ({self.feature_names[index]!r})"
        return f"feature {index}"

    def _refused_value(self, instances: list[Any]) -> tuple[int, int, str] | None:
        """(instance, feature, kind) of the first value the model raised on that `_matrix` lets
        through (null, NaN, an infinity, a string), or None when the model failed by itself.
        Those values were the cause when the model answers once they are zeros (numbers first:
        a model may take strings). Only asked once the model has raised."""
        rows = [
            row if isinstance(row, list) else self._row_from_object(i, row)
            for i, row in enumerate(instances)
        ]
        odd = [
            (i, j, kind)
            for i, row in enumerate(rows)
            for j, value in enumerate(row)
            if (kind := _odd_value(value)) is not None
        ]
        numeric = [o for o in odd if o[2] != _STRINGS]
        strings = [o for o in odd if o[2] == _STRINGS]
        if numeric and self._answers(rows, numeric):
            return numeric[0]
        if strings and self._answers(rows, odd):
            return strings[0]
        return None

    def _answers(self, rows: list[list[Any]], zeroed: list[tuple[int, int, str]]) -> bool:
        cleaned = [list(row) for row in rows]
        for i, j, _ in zeroed:
            cleaned[i][j] = 0.0
        try:
            self._run(self._matrix(cleaned))
        except Exception:
            return False
        return True

    def _row_from_object(self, index: int, instance: dict[str, Any]) -> list[Any]:
        names = self.feature_names
        if names is None:
            expects = f" of {self.n_features} features" if self.n_features else ""
            raise self._bad(
                f"instance {index} is an object, but the model records no feature names, "
                f"so their order is unknown; send a list{expects} in training order"
            )
        missing = [n for n in names if n not in instance]
        if missing:
            raise self._bad(f"instance {index}: missing feature(s) {_names(missing)}")
        if len(instance) != len(names):
            unknown = sorted(str(k) for k in instance if k not in self._feature_set)
            raise self._bad(f"instance {index}: unknown feature(s) {_names(unknown)}")
        return [instance[n] for n in names]

    def _matrix(self, instances: list[Any]) -> npt.NDArray[Any]:
        rows: list[list[Any]] = []
        for i, instance in enumerate(instances):
            if isinstance(instance, dict):
                rows.append(self._row_from_object(i, instance))
            elif isinstance(instance, list):
                rows.append(instance)
            else:
                raise self._bad(
                    f"instance {i} must be a list of features or an object of name: value, "
                    f"not {describe_kind(instance)}"
                )
        width = self.n_features if self.n_features is not None else len(rows[0])
        has_strings = False
        for i, row in enumerate(rows):
            if len(row) != width:
                expected = "the model expects" if self.n_features is not None else "instance 0 has"
                raise self._bad(f"instance {i} has {len(row)} features; {expected} {width}")
            for j, value in enumerate(row):
                if _is_feature_value(value):
                    continue
                if isinstance(value, str) and self._accepts_strings:
                    has_strings = True
                    continue
                raise self._bad(
                    f"instance {i}, {self._feature(j)}: expected a number or null, "
                    f"got {describe_kind(value)}"
                )
        try:
            # Strings go to the model as they are: a pipeline may encode them itself.
            return np.asarray(rows, dtype=object if has_strings else self._dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise self._bad(f"cannot convert the instances to numbers: {_one_line(exc)}") from exc


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class EstimatorModel(LoadedModel):
    """An object with the scikit-learn `predict(X)` API (sklearn or xgboost's wrappers)."""

    def __init__(self, path: Path, library: Library, format: str, estimator: Any) -> None:
        names = getattr(estimator, "feature_names_in_", None)
        n = getattr(estimator, "n_features_in_", None)
        super().__init__(
            path,
            library,
            format,
            n_features=int(n) if isinstance(n, numbers.Integral) else None,
            feature_names=[str(x) for x in names] if names is not None else None,
            accepts_strings=library is Library.SKLEARN,
        )
        self.estimator = estimator

    def _run(self, matrix: npt.NDArray[Any]) -> Any:
        return self.estimator.predict(matrix)


class BoosterModel(LoadedModel):
    """A native xgboost Booster; the objective decides between value and class label."""

    def __init__(self, path: Path, format: str, booster: Any) -> None:
        config = json.loads(booster.save_config())
        self.objective: str = config["learner"]["objective"]["name"]
        names = booster.feature_names
        super().__init__(
            path,
            Library.XGBOOST,
            format,
            n_features=int(booster.num_features()),
            feature_names=list(names) if names else None,
        )
        self.booster = booster

    def _run(self, matrix: npt.NDArray[Any]) -> Any:
        raw = np.asarray(self.booster.inplace_predict(matrix))
        if self.objective in _THRESHOLDS:
            return (raw > _THRESHOLDS[self.objective]).astype(np.int64)
        if self.objective in _CLASS_OUTPUTS:
            return raw.astype(np.int64)
        if self.objective == "multi:softprob" and raw.ndim == 2:
            return raw.argmax(axis=1)
        return raw


class OnnxModel(LoadedModel):
    """An ONNX graph run by onnxruntime on the CPU; the first output is the answer."""

    def __init__(self, path: Path, session: Any) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            listed = ", ".join(repr(i.name) for i in inputs)
            raise _Unloadable(
                f"it has {len(inputs)} inputs ({listed}); only single-input models are supported"
            )
        tensor = inputs[0]
        dtype = _ONNX_DTYPES.get(tensor.type)
        if dtype is None:
            raise _Unloadable(
                f"input {tensor.name!r} is {tensor.type}; supported: {', '.join(_ONNX_DTYPES)}"
            )
        shape = list(tensor.shape or [])
        if len(shape) != 2:
            raise _Unloadable(
                f"input {tensor.name!r} has shape {shape}; expected [batch, features]"
            )
        n = shape[1] if isinstance(shape[1], int) else None
        metadata = session.get_modelmeta().custom_metadata_map
        names = _parse_feature_names(metadata.get("feature_names"))
        if names is not None and n is not None and len(names) != n:
            raise _Unloadable(
                f"metadata names {len(names)} features but input {tensor.name!r} takes {n}"
            )
        super().__init__(
            path,
            Library.ONNX,
            "onnx",
            n_features=n if n is not None else (len(names) if names else None),
            feature_names=names,
            dtype=dtype,
        )
        self.session = session
        self.input_name: str = tensor.name
        self.output_name: str = session.get_outputs()[0].name

    def _run(self, matrix: npt.NDArray[Any]) -> Any:
        return self.session.run([self.output_name], {self.input_name: matrix})[0]


def _parse_feature_names(value: str | None) -> list[str] | None:
    if not value:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
        return [str(x) for x in parsed]
    return [part.strip() for part in value.split(",")]


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
    the content disagree, or `library` does not take that format.
    """
    lib = _library(library)
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise _unloadable(path, lib, exc.strerror or type(exc).__name__) from exc
    if not head:
        raise _unloadable(path, lib, "the file is empty")
    sniffed = _sniff(head)
    named = _SUFFIXES.get(path.suffix.lower())
    pickled = {"joblib", "pickle"}
    if named in pickled and sniffed in pickled:
        fmt = "joblib" if sniffed == "joblib" else named
    elif named is not None:
        if sniffed is not None and sniffed != named:
            raise _unloadable(
                path, lib, f"named {path.suffix} but the content is {_CONTENT[sniffed]}"
            )
        fmt = named
    elif sniffed is not None:
        fmt = sniffed
    elif head[:1] == b"\x08":
        # An ONNX ModelProto opens with its ir_version field (tag 0x08).
        fmt = "onnx"
    else:
        raise _unloadable(
            path,
            lib,
            "cannot tell the format from the name or content; expected "
            + ", ".join(suffix for suffix, f in _SUFFIXES.items() if f in FORMATS[lib]),
        )
    if fmt not in FORMATS[lib]:
        raise _unloadable(path, lib, f"{lib} takes {' or '.join(FORMATS[lib])}, not {fmt}")
    return fmt


# ---------------------------------------------------------------- loading


def load_model(path: Path, library: Library | str) -> LoadedModel:
    """Load an artifact of `library`.

    Raises InvalidInput("<file>: not a loadable <library> model (<reason>)").
    """
    lib = _library(library)
    fmt = detect_format(path, lib)
    try:
        if fmt in ("joblib", "pickle"):
            return _from_pickle(path, lib, fmt)
        if fmt in ("json", "ubj"):
            import xgboost

            booster = xgboost.Booster()
            # From bytes, xgboost tells JSON from UBJSON by content; from a path, by suffix.
            booster.load_model(bytearray(path.read_bytes()))
            return BoosterModel(path, fmt, booster)
        return OnnxModel(path, _onnx_session(path))
    except _Unloadable as exc:
        raise _unloadable(path, lib, str(exc)) from exc
    except Exception as exc:  # any library's own load error is the file's fault
        raise _unloadable(path, lib, _one_line(exc)) from exc


def _from_pickle(path: Path, library: Library, fmt: str) -> LoadedModel:
    import joblib

    try:
        # joblib reads plain pickles too, and a pickle named .pkl is often a joblib dump.
        obj = joblib.load(path)
    except Exception as exc:  # unpickling can fail in any way the stored classes allow
        raise _Unloadable(f"cannot unpickle it: {_one_line(exc)}") from exc
    kind = type(obj).__name__
    if library is Library.XGBOOST:
        import xgboost

        if isinstance(obj, xgboost.Booster):
            return BoosterModel(path, fmt, obj)
        if not isinstance(obj, xgboost.XGBModel):
            raise _Unloadable(f"the file holds a {kind}, not an xgboost estimator or Booster")
        obj.get_booster()  # raises NotFittedError for an unfitted estimator
        return EstimatorModel(path, library, fmt, obj)
    if not callable(getattr(obj, "predict", None)):
        raise _Unloadable(f"the file holds a {kind}, which has no predict()")
    if callable(getattr(obj, "fit", None)):
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(obj)
        except NotFittedError as exc:
            raise _Unloadable(f"the {kind} is not fitted") from exc
    _quiet_feature_name_warning()
    return EstimatorModel(path, library, fmt, obj)


def _quiet_feature_name_warning() -> None:
    # Named features are put in `feature_names_in_` order and passed as an array
    # (pandas is not a dependency), which sklearn would warn about on every call.
    # A narrow process-wide filter, since `catch_warnings` is not thread-safe;
    # adding it again only moves it to the front.
    warnings.filterwarnings(
        "ignore", message="X does not have valid feature names", category=UserWarning
    )


def _onnx_session(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Tabular models are small: one thread each beats thread pools spinning
    # against each other when a gateway holds many models on few cores.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


# ---------------------------------------------------------------- cache

_CACHE_SIZE = 32
_cache: OrderedDict[tuple[str, Library], tuple[tuple[int, int], LoadedModel]] = OrderedDict()
_cache_lock = threading.Lock()
_load_locks: dict[tuple[str, Library], threading.Lock] = {}


def load_model_cached(path: Path, library: Library | str) -> LoadedModel:
    """`load_model`, reusing the loaded model while the file's mtime and size stay the same.

    Thread-safe: concurrent calls for one file load it once; calls for
    different files do not wait for each other. Keeps the 32 most recently
    used models; failed loads are not kept.
    """
    lib = _library(library)
    resolved = path.resolve()
    try:
        st = resolved.stat()
    except OSError as exc:
        raise _unloadable(path, lib, exc.strerror or type(exc).__name__) from exc
    key = (str(resolved), lib)
    stamp = (st.st_mtime_ns, st.st_size)
    with _cache_lock:
        hit = _cached(key, stamp)
        if hit is not None:
            return hit
        lock = _load_locks.setdefault(key, threading.Lock())
    with lock:
        with _cache_lock:
            hit = _cached(key, stamp)
        if hit is not None:
            return hit
        model = load_model(resolved, lib)
        with _cache_lock:
            _cache[key] = (stamp, model)
            _cache.move_to_end(key)
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        return model


def _cached(key: tuple[str, Library], stamp: tuple[int, int]) -> LoadedModel | None:
    entry = _cache.get(key)
    if entry is None or entry[0] != stamp:
        return None
    _cache.move_to_end(key)
    return entry[1]


def clear_cache() -> None:
    """Forget every cached model (the next `load_model_cached` loads from the file)."""
    with _cache_lock:
        _cache.clear()
