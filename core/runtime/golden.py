"""Golden data: expected predictions that a model version must reproduce.

The file is JSON Lines, one case a line:
`{"input": [feature, ...] or {"name": value, ...}, "output": expected}`.
Blank lines are skipped; anything else that is not such a case is an error
naming its line. Numbers are compared within an absolute tolerance, strings
and booleans exactly, lists item by item.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.json_lines import json_lines
from core.ports import InvalidInput, PortError
from core.runtime.loaded_model import Predictor, describe_kind
from core.strict_json import strict_loads

__all__ = [
    "DEFAULT_TOLERANCE",
    "GoldenCase",
    "GoldenReport",
    "Mismatch",
    "check_golden",
    "read_golden",
]

DEFAULT_TOLERANCE = 1e-6
_BATCH = 256
_KEYS = ("input", "output")


class GoldenCase(BaseModel):
    """One expected prediction; `line` is its 1-based line in the file."""

    model_config = ConfigDict(frozen=True)

    line: int
    input: list[Any] | dict[str, Any]
    output: Any


class Mismatch(BaseModel):
    """A case the model did not reproduce; `got` is None when predict failed."""

    model_config = ConfigDict(frozen=True)

    line: int
    input: list[Any] | dict[str, Any]
    expected: Any
    got: Any
    reason: str
    predict_error: str | None = None

    def describe(self) -> str:
        expected = _show(self.expected)
        if self.predict_error is not None:
            return f"expected {expected}, predict failed: {self.predict_error}"
        return f"expected {expected}, got {_show(self.got)}"


class GoldenReport(BaseModel):
    """The outcome of a golden check: every mismatch, in file order."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    total: int
    tolerance: float
    mismatches: list[Mismatch]

    def summary(self) -> str:
        matched = self.total - len(self.mismatches)
        text = f"golden data: {matched}/{self.total} cases match (tolerance {self.tolerance:g})"
        if self.mismatches:
            first = self.mismatches[0]
            text += f"; first mismatch at line {first.line}: {first.describe()}"
        return text


def _show(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- reading


class _BadLine(Exception):
    """Why one line is not a golden case."""


def _not_a_number(name: str) -> _BadLine:
    return _BadLine(f"{name} is not a number golden data can hold")


def _out_of_range(text: str) -> _BadLine:
    return _BadLine(f"number {text} is out of range")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _BadLine(f"duplicate key {key!r}")
        result[key] = value
    return result


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_feature(where: str, value: Any) -> None:
    if value is None or isinstance(value, bool | str) or _is_number(value):
        return
    raise _BadLine(f"{where} is {describe_kind(value)}; a feature is a number, string or null")


def _check_output(where: str, value: Any) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_output(f"{where}[{i}]", item)
        return
    if isinstance(value, bool | str) or _is_number(value):
        return
    raise _BadLine(f"{where} is {describe_kind(value)}; expected a number, string, boolean or list")


def _parse_case(text: str, line: int) -> GoldenCase:
    try:
        data = strict_loads(
            text, _not_a_number, out_of_range=_out_of_range, object_pairs_hook=_unique_keys
        )
    except json.JSONDecodeError as exc:
        raise _BadLine(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    except ValueError as exc:  # an integer of more digits than Python converts (4300)
        raise _BadLine(f"not JSON mmm can read ({str(exc).split(';')[0]})") from None
    except RecursionError:
        raise _BadLine("JSON nested deeper than mmm reads") from None
    if not isinstance(data, dict):
        raise _BadLine(f'expected an object with "input" and "output", got {describe_kind(data)}')
    unknown = [k for k in data if k not in _KEYS]
    if unknown:
        raise _BadLine(f"unknown key {unknown[0]!r} (a case has only input and output)")
    for key in _KEYS:
        if key not in data:
            raise _BadLine(f"missing key {key!r}")
    instance, expected = data["input"], data["output"]
    if isinstance(instance, list):
        for i, value in enumerate(instance):
            _check_feature(f"input[{i}]", value)
    elif isinstance(instance, dict):
        for name, value in instance.items():
            _check_feature(f"input[{name!r}]", value)
    else:
        raise _BadLine(f"input is {describe_kind(instance)}; expected a list or an object")
    if not instance:
        raise _BadLine("input is empty")
    try:
        _check_output("output", expected)
    except RecursionError:
        raise _BadLine("output nested deeper than mmm reads") from None
    return GoldenCase(line=line, input=instance, output=expected)


def read_golden(path: Path) -> list[GoldenCase]:
    """Parse a golden-data file; raises InvalidInput("<file>: line N: <reason>") on a bad line.

    Every line is checked, the first bad one is named (with a count of the
    others). A file with no case at all is an error too.
    """
    cases: list[GoldenCase] = []
    errors: list[tuple[int, str]] = []
    for number, stripped in json_lines(path, "cannot read golden data"):
        try:
            cases.append(_parse_case(stripped, number))
        except _BadLine as exc:
            errors.append((number, str(exc)))
    if errors:
        number, reason = errors[0]
        more = len(errors) - 1
        others = f" (and {more} more bad line{'s' if more > 1 else ''})" if more else ""
        raise InvalidInput(f"{path}: line {number}: {reason}{others}")
    if not cases:
        raise InvalidInput(f"{path}: no golden cases (the file is empty)")
    return cases


# ---------------------------------------------------------------- checking


def _difference(expected: Any, got: Any, tolerance: float) -> str | None:
    """Why `got` does not match `expected`, or None when it does."""
    if isinstance(expected, bool) or isinstance(got, bool):
        if isinstance(expected, bool) and isinstance(got, bool):
            return None if expected is got else "booleans differ"
        return f"expected {describe_kind(expected)}, got {describe_kind(got)}"
    if _is_number(expected) and _is_number(got):
        if isinstance(expected, numbers.Integral) and isinstance(got, numbers.Integral):
            gap = abs(int(expected) - int(got))
            return None if gap <= tolerance else f"differs by {gap}"
        try:
            e, g = float(expected), float(got)
        except OverflowError:
            return "a number is too large to compare"
        if math.isnan(g):
            return "got NaN"
        if math.isclose(e, g, rel_tol=0.0, abs_tol=tolerance):
            return None
        return f"differs by {abs(e - g):.3g}"
    if isinstance(expected, str) and isinstance(got, str):
        return None if expected == got else "strings differ"
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return f"expected {len(expected)} values, got {len(got)}"
        for i, (e_item, g_item) in enumerate(zip(expected, got, strict=True)):
            reason = _difference(e_item, g_item, tolerance)
            if reason is not None:
                return f"item {i}: {reason}"
        return None
    return f"expected {describe_kind(expected)}, got {describe_kind(got)}"


def _predict_batch(predictor: Predictor, batch: list[GoldenCase]) -> list[tuple[Any, str | None]]:
    """(prediction, error) per case; a failing batch is retried case by case."""
    try:
        outputs = predictor.predict([case.input for case in batch])
    except InvalidInput as exc:
        if len(batch) == 1:
            return [(None, str(exc))]
        return [_predict_batch(predictor, [case])[0] for case in batch]
    if len(outputs) != len(batch):
        raise PortError(f"the model gave {len(outputs)} predictions for {len(batch)} instances")
    return [(output, None) for output in outputs]


def check_golden(
    predictor: Predictor, cases: list[GoldenCase], tolerance: float = DEFAULT_TOLERANCE
) -> GoldenReport:
    """Predict every case (in batches) and report every mismatch.

    A case whose prediction fails is a mismatch with the model's reason. An
    empty list of cases is InvalidInput: a check of nothing must not pass.
    """
    if not cases:
        raise InvalidInput("golden data: no cases to check")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise InvalidInput(f"golden data: tolerance must be a number >= 0, not {tolerance}")
    mismatches: list[Mismatch] = []
    for start in range(0, len(cases), _BATCH):
        batch = cases[start : start + _BATCH]
        for case, (got, error) in zip(batch, _predict_batch(predictor, batch), strict=True):
            reason = (
                f"predict failed: {error}"
                if error is not None
                else _difference(case.output, got, tolerance)
            )
            if reason is not None:
                mismatches.append(
                    Mismatch(
                        line=case.line,
                        input=case.input,
                        expected=case.output,
                        got=got,
                        reason=reason,
                        predict_error=error,
                    )
                )
    return GoldenReport(
        passed=not mismatches, total=len(cases), tolerance=tolerance, mismatches=mismatches
    )
