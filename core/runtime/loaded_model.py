"""A loaded model's one way to predict: instances in, one JSON-able value each out.

`LoadedModel` checks the instances against what the file records (their
number of features, their names) and words every refusal in one line; each
kind of model (`core.runtime.model_kinds`) only says how to run a matrix.
What an instance and an answer are is told in `core.runtime.loaders`.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from core.domain import Library
from core.ports import InvalidInput, ModelFailed

__all__ = ["LoadedModel", "ModelFailed", "Predictor", "Unloadable", "describe_kind", "one_line"]


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


def one_line(exc: BaseException, limit: int = 300) -> str:
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


class Unloadable(Exception):
    """Why a file is not a model of its library; load_model words the message."""


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
                    f"{self._feature(j)}: {one_line(exc)}"
                ) from exc
            raise ModelFailed(f"{self.path.name}: predict failed: {one_line(exc)}") from exc
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
            raise self._bad(f"cannot convert the instances to numbers: {one_line(exc)}") from exc


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
