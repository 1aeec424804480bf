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

import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

from core.domain import Library
from core.runtime.formats import FORMATS, detect_format, library_named, unloadable
from core.runtime.loaded_model import (
    LoadedModel,
    ModelFailed,
    Predictor,
    Unloadable,
    describe_kind,
    one_line,
)
from core.runtime.model_kinds import BoosterModel, EstimatorModel, OnnxModel

__all__ = [
    "FORMATS",
    "LoadedModel",
    "ModelFailed",
    "Predictor",
    "clear_cache",
    "describe_kind",
    "detect_format",
    "load_model",
    "load_model_cached",
]


# ---------------------------------------------------------------- loading


def load_model(path: Path, library: Library | str) -> LoadedModel:
    """Load an artifact of `library`.

    Raises InvalidInput("<file>: not a loadable <library> model (<reason>)").
    """
    lib = library_named(library)
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
    except Unloadable as exc:
        raise unloadable(path, lib, str(exc)) from exc
    except Exception as exc:  # any library's own load error is the file's fault
        raise unloadable(path, lib, one_line(exc)) from exc


def _from_pickle(path: Path, library: Library, fmt: str) -> LoadedModel:
    import joblib

    try:
        # joblib reads plain pickles too, and a pickle named .pkl is often a joblib dump.
        obj = joblib.load(path)
    except Exception as exc:  # unpickling can fail in any way the stored classes allow
        raise Unloadable(f"cannot unpickle it: {one_line(exc)}") from exc
    kind = type(obj).__name__
    if library is Library.XGBOOST:
        import xgboost

        if isinstance(obj, xgboost.Booster):
            return BoosterModel(path, fmt, obj)
        if not isinstance(obj, xgboost.XGBModel):
            raise Unloadable(f"the file holds a {kind}, not an xgboost estimator or Booster")
        obj.get_booster()  # raises NotFittedError for an unfitted estimator
        return EstimatorModel(path, library, fmt, obj)
    if not callable(getattr(obj, "predict", None)):
        raise Unloadable(f"the file holds a {kind}, which has no predict()")
    if callable(getattr(obj, "fit", None)):
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(obj)
        except NotFittedError as exc:
            raise Unloadable(f"the {kind} is not fitted") from exc
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
    lib = library_named(library)
    resolved = path.resolve()
    try:
        st = resolved.stat()
    except OSError as exc:
        raise unloadable(path, lib, exc.strerror or type(exc).__name__) from exc
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
