"""The kinds of model the standard runtime runs: an estimator, an xgboost Booster, an ONNX graph.

Each kind reads what its object records (feature count and names) and runs a
matrix; checking the instances is `LoadedModel`'s. How a file becomes one of
these is `core.runtime.loaders`'.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.domain import Library
from core.runtime.loaded_model import LoadedModel, Unloadable

__all__ = ["BoosterModel", "EstimatorModel", "OnnxModel"]

_ONNX_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
}

# xgboost objectives whose raw prediction is turned into a class label.
_THRESHOLDS = {"binary:logistic": 0.5, "binary:logitraw": 0.0}
_CLASS_OUTPUTS = {"binary:hinge", "multi:softmax"}


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
            raise Unloadable(
                f"it has {len(inputs)} inputs ({listed}); only single-input models are supported"
            )
        tensor = inputs[0]
        dtype = _ONNX_DTYPES.get(tensor.type)
        if dtype is None:
            raise Unloadable(
                f"input {tensor.name!r} is {tensor.type}; supported: {', '.join(_ONNX_DTYPES)}"
            )
        shape = list(tensor.shape or [])
        if len(shape) != 2:
            raise Unloadable(f"input {tensor.name!r} has shape {shape}; expected [batch, features]")
        n = shape[1] if isinstance(shape[1], int) else None
        metadata = session.get_modelmeta().custom_metadata_map
        names = _parse_feature_names(metadata.get("feature_names"))
        if names is not None and n is not None and len(names) != n:
            raise Unloadable(
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
