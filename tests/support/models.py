"""Tiny real models, their artifacts and golden files, for tests.

Every model trains in well under a second on a data set that ships with
scikit-learn (diabetes: 10 features, regression; iris: 4 features, 3
classes; breast cancer: 30 features, 2 classes), so nothing is downloaded.
Each `train_*` function writes one artifact into `dir` (created if needed)
and returns its path; the file name carries the arguments, so several
variants can share a folder. The same arguments give the same model.

- `seed` picks the training rows (and xgboost's sampling): another seed,
  another model.
- `shift` is added to a regressor's targets, so its predictions move by about
  `shift`: a candidate that differs from its golden data by a known amount.

Models record their feature names (the data set's), so they accept objects
as instances as well as lists; `train_onnx(..., feature_names=False)` makes
one that accepts lists only.

`FlakyRegressor` and `SlowRegressor` are sklearn-compatible estimators
defined here so that joblib can load them in any process that can import
`tests.support.models` (run from the repository root, or put it on
PYTHONPATH).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils.validation import check_is_fitted

from core.domain import Library
from core.runtime.loaders import load_model

__all__ = [
    "FlakyRegressor",
    "LinearRegressor",
    "SlowRegressor",
    "sample_instances",
    "train_flaky_regressor",
    "train_onnx",
    "train_sklearn_classifier",
    "train_sklearn_regressor",
    "train_slow_regressor",
    "train_xgboost",
    "write_broken_artifact",
    "write_golden",
]

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class _Data:
    x: Array
    y: Array
    names: list[str]
    labels: list[str]  # class names; empty for regression


@cache
def _dataset(name: str) -> _Data:
    loader = {"diabetes": load_diabetes, "iris": load_iris, "cancer": load_breast_cancer}[name]
    bunch = loader()
    labels = [str(n) for n in getattr(bunch, "target_names", [])]
    return _Data(bunch.data, bunch.target, [str(n) for n in bunch.feature_names], labels)


def _by_width(n_features: int) -> _Data:
    for name in ("diabetes", "iris", "cancer"):
        data = _dataset(name)
        if data.x.shape[1] == n_features:
            return data
    raise ValueError(f"no bundled data set has {n_features} features (10, 4 or 30)")


def _rows(data: _Data, seed: int) -> Array:
    """Four fifths of the rows, chosen by `seed`."""
    order = np.random.default_rng(seed).permutation(len(data.y))
    return np.sort(order[: len(order) * 4 // 5])


def _target(dir: Path, stem: str, seed: int, shift: float, suffix: str) -> Path:
    dir.mkdir(parents=True, exist_ok=True)
    shifted = f"-shift{shift:g}" if shift else ""
    return dir / f"{stem}-seed{seed}{shifted}{suffix}"


def _dump(estimator: Any, path: Path) -> Path:
    joblib.dump(estimator, path)
    return path


def _named(estimator: Any, names: list[str]) -> Any:
    # What fitting on a DataFrame records; pandas is not a dependency.
    estimator.feature_names_in_ = np.asarray(names, dtype=object)
    return estimator


# ---------------------------------------------------------------- sklearn


def train_sklearn_regressor(
    dir: Path, seed: int = 0, shift: float = 0.0, *, fmt: Literal["joblib", "pickle"] = "joblib"
) -> Path:
    """Ridge on diabetes (10 features); predictions are floats."""
    data = _dataset("diabetes")
    rows = _rows(data, seed)
    model = Ridge(alpha=0.1).fit(data.x[rows], data.y[rows] + shift)
    suffix = ".joblib" if fmt == "joblib" else ".pkl"
    return _dump(_named(model, data.names), _target(dir, "sklearn-regressor", seed, shift, suffix))


def train_sklearn_classifier(
    dir: Path,
    seed: int = 0,
    *,
    string_labels: bool = False,
    fmt: Literal["joblib", "pickle"] = "joblib",
) -> Path:
    """Logistic regression on iris (4 features); labels 0-2, or species names."""
    data = _dataset("iris")
    rows = _rows(data, seed)
    y = np.asarray(data.labels)[data.y] if string_labels else data.y
    model = LogisticRegression(max_iter=500).fit(data.x[rows], y[rows])
    stem = "sklearn-classifier-str" if string_labels else "sklearn-classifier"
    suffix = ".joblib" if fmt == "joblib" else ".pkl"
    return _dump(_named(model, data.names), _target(dir, stem, seed, 0.0, suffix))


# ---------------------------------------------------------------- xgboost


def train_xgboost(
    dir: Path,
    seed: int = 0,
    shift: float = 0.0,
    *,
    kind: Literal["regressor", "binary", "multiclass"] = "regressor",
    fmt: Literal["json", "ubj", "joblib"] = "json",
) -> Path:
    """XGBoost, 8 trees of depth 3: regressor on diabetes, binary on breast cancer,
    multiclass on iris. `json`/`ubj` are `save_model` files, `joblib` the estimator."""
    import xgboost

    params: dict[str, Any] = {
        "n_estimators": 8,
        "max_depth": 3,
        "subsample": 0.8,
        "random_state": seed,
        "n_jobs": 1,
    }
    model: Any
    if kind == "regressor":
        data = _dataset("diabetes")
        model = xgboost.XGBRegressor(**params)
        y = data.y + shift
    else:
        data = _dataset("cancer" if kind == "binary" else "iris")
        model = xgboost.XGBClassifier(**params)
        y = data.y
    rows = _rows(data, seed)
    model.fit(data.x[rows], y[rows])
    model.get_booster().feature_names = data.names
    path = _target(dir, f"xgboost-{kind}", seed, shift, f".{fmt}")
    if fmt == "joblib":
        return _dump(model, path)
    model.save_model(path)
    return path


# ---------------------------------------------------------------- onnx


def train_onnx(
    dir: Path,
    seed: int = 0,
    shift: float = 0.0,
    *,
    kind: Literal["regressor", "classifier"] = "regressor",
    feature_names: bool = True,
) -> Path:
    """An sklearn model converted by skl2onnx (float input `[None, n]`): the Ridge of
    `train_sklearn_regressor` or the logistic regression of `train_sklearn_classifier`
    (int labels). With `feature_names`, the names go into the model's metadata."""
    from onnx.helper import set_model_props
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    data = _dataset("diabetes" if kind == "regressor" else "iris")
    rows = _rows(data, seed)
    model: Any
    if kind == "regressor":
        model = Ridge(alpha=0.1).fit(data.x[rows], data.y[rows] + shift)
    else:
        model = LogisticRegression(max_iter=500).fit(data.x[rows], data.y[rows])
    width = data.x.shape[1]
    proto = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, width]))])
    if feature_names:
        set_model_props(proto, {"feature_names": json.dumps(data.names)})
    stem = f"onnx-{kind}" + ("" if feature_names else "-unnamed")
    path = _target(dir, stem, seed, shift, ".onnx")
    path.write_bytes(proto.SerializeToString())
    return path


# ---------------------------------------------------------------- odd models


class LinearRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Least squares with an intercept; the base of the odd models below."""

    coef_: Array
    intercept_: float
    n_features_in_: int

    def fit(self, x: Array, y: Array) -> LinearRegressor:
        x = np.asarray(x, dtype=np.float64)
        design = np.column_stack([x, np.ones(len(x))])
        solution = np.linalg.lstsq(design, np.asarray(y, dtype=np.float64), rcond=None)[0]
        self.coef_ = solution[:-1]
        self.intercept_ = float(solution[-1])
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: Array) -> Array:
        check_is_fitted(self)
        result: Array = np.asarray(x, dtype=np.float64) @ self.coef_ + self.intercept_
        return result


class FlakyRegressor(LinearRegressor):
    """Raises ValueError when any instance's first feature exceeds `threshold`."""

    def __init__(self, threshold: float = 0.05) -> None:
        self.threshold = threshold

    def predict(self, x: Array) -> Array:
        x = np.asarray(x, dtype=np.float64)
        over = np.flatnonzero(x[:, 0] > self.threshold)
        if over.size:
            first = x[over[0], 0]
            raise ValueError(f"first feature {first:g} exceeds the threshold {self.threshold:g}")
        return super().predict(x)


class SlowRegressor(LinearRegressor):
    """Sleeps `delay_ms` in every predict call, then predicts."""

    def __init__(self, delay_ms: float = 50.0) -> None:
        self.delay_ms = delay_ms

    def predict(self, x: Array) -> Array:
        time.sleep(self.delay_ms / 1000)
        return super().predict(x)


def train_flaky_regressor(dir: Path, threshold: float = 0.05) -> Path:
    """A FlakyRegressor on diabetes (age is the first feature, from -0.11 to 0.11)."""
    data = _dataset("diabetes")
    model = _named(FlakyRegressor(threshold).fit(data.x, data.y), data.names)
    return _dump(model, _target(dir, f"flaky-regressor-t{threshold:g}", 0, 0.0, ".joblib"))


def train_slow_regressor(dir: Path, delay_ms: float = 50.0) -> Path:
    """A SlowRegressor on diabetes."""
    data = _dataset("diabetes")
    model = _named(SlowRegressor(delay_ms).fit(data.x, data.y), data.names)
    return _dump(model, _target(dir, f"slow-regressor-{delay_ms:g}ms", 0, 0.0, ".joblib"))


# ---------------------------------------------------------------- inputs and golden files


def sample_instances(
    n_features: int, n: int = 20, *, as_dicts: bool = False, start: int = 0
) -> list[Any]:
    """`n` rows spread evenly over the bundled data set with that many features (so a
    classifier sees every class), as lists of floats or as objects keyed by feature name.
    `start` moves the first row."""
    data = _by_width(n_features)
    size = len(data.x)
    picked = [data.x[(start + i * size // n) % size] for i in range(n)]
    if as_dicts:
        return [dict(zip(data.names, map(float, row), strict=True)) for row in picked]
    return [[float(v) for v in row] for row in picked]


def write_golden(
    model_path: Path, library: Library, dir: Path, n: int = 20, *, as_dicts: bool = False
) -> Path:
    """Golden JSONL of `n` cases: data-set rows and the model's own predictions.

    Written next to nothing else: `dir/<model file stem>.golden.jsonl`.
    """
    model = load_model(model_path, library)
    if model.n_features is None:
        raise ValueError(f"{model_path.name}: the model does not say how many features it takes")
    instances = sample_instances(model.n_features, n, as_dicts=as_dicts)
    outputs = model.predict(instances)
    dir.mkdir(parents=True, exist_ok=True)
    path = dir / f"{model_path.stem}.golden.jsonl"
    lines = [json.dumps({"input": i, "output": o}) for i, o in zip(instances, outputs, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


_BROKEN_SUFFIX = {
    Library.SKLEARN: ".joblib",
    Library.XGBOOST: ".json",
    Library.ONNX: ".onnx",
    Library.HUGGINGFACE: ".safetensors",
    Library.PYTORCH: ".pt",
}


def write_broken_artifact(dir: Path, library: Library = Library.SKLEARN) -> Path:
    """A file named like an artifact of `library` whose content is not a model."""
    dir.mkdir(parents=True, exist_ok=True)
    path = dir / f"broken{_BROKEN_SUFFIX[library]}"
    path.write_bytes(b"this is not a model\n")
    return path


def replayed_shadow_file(folder: Path, rows: list[Any], **spec: Any) -> Path:
    """A deployment file of an auto-approved shadow test replaying `rows` (every one needed),
    with tolerances at which 40 pairs settle a candidate that equal (or that far off); `spec`
    adds keys (the endpoint, say)."""
    replay = folder / "replay.jsonl"
    replay.write_text("".join(json.dumps(row) + "\n" for row in rows))
    strategy = {
        "kind": "shadow",
        "traffic": {"replay": str(replay)},
        "min_samples": len(rows),
        "auto_approve": True,
    }
    analysis = {"min_pairs": 20, "max_error_rate_increase": 0.1, "max_quantile_shift": 0.2}
    path = folder / "shadow.yaml"
    path.write_text(json.dumps({**spec, "strategy": strategy, "analysis": analysis}))
    return path
