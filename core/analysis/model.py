"""Paired production/shadow outputs, checked and typed: the input of the analysis.

A `PairedSample` holds one row per request answered by both versions. Outputs
are classified once, here, so the statistics never see Python objects:

- numbers (floats; ints mixed with floats count as numbers) -> `NUMBERS`
- labels: all ints, all strings or all booleans -> `LABELS` (integer codes
  into `labels`; a label's type is part of its identity, so `1` != `"1"`)
- equal-length lists of numbers -> `PROBABILITIES` when every row on both
  sides is a probability vector (entries in [0, 1], sum 1 within 1e-3),
  otherwise `VECTORS` (several scores per request); a list of one number is
  a number.

Treatments, never silent (each applied one is listed in `notes`):

- a side that errored, returned nothing (None) or returned a non-finite
  number (NaN, inf, also inside a vector) counts as an error of that side:
  the pair is left out of the output comparison and counts in the error
  rates, so a shadow that produces NaN where production does not fails the
  error-rate tolerance.
- integer labels on one side and integral floats (`1.0`) on the other are
  compared as integer labels.
- pairs that share one request (`request_id` of the form `<id>#<index>`)
  share one latency measurement: it counts once.

Refused with `AnalysisInputError` (one line naming the record and reason): an
empty capture, mismatched lengths, outputs of unsupported types (dicts, ...),
mixed output types on one side (strings and numbers, ...), outputs of
different kinds on the two sides (labels and non-integral numbers, vectors of
different lengths, ...), ragged vectors, negative or non-finite latencies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from core.ports import InvalidInput

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_PROBABILITY_SUM_TOLERANCE = 1e-3
_PLAIN_NUMBERS = {float, int, type(None)}


class AnalysisInputError(InvalidInput, ValueError):
    """Captured pairs that cannot be analysed; the message names the record and the reason."""


class OutputKind(StrEnum):
    NUMBERS = "numbers"  # one score per request (regression)
    LABELS = "labels"  # one class label per request
    PROBABILITIES = "probabilities"  # one probability vector per request
    VECTORS = "vectors"  # several scores per request (multi-output regression)


@dataclass(frozen=True, eq=False)
class PairedSample:
    """Production and shadow outputs for the same requests, row by row.

    `production`/`shadow`: float64 `(n,)` for NUMBERS (NaN where that side
    has no output), int64 codes `(n,)` into `labels` for LABELS (-1: none),
    float64 `(n, k)` for PROBABILITIES and VECTORS (NaN rows: none).
    `*_error`: the side failed or gave no usable output. `*_ms`: latency in
    milliseconds, NaN where not measured; None when no latency was given.
    """

    kind: OutputKind
    production: npt.NDArray[Any]
    shadow: npt.NDArray[Any]
    production_error: BoolArray
    shadow_error: BoolArray
    production_ms: FloatArray | None = None
    shadow_ms: FloatArray | None = None
    labels: tuple[Any, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.production_error)
        if n == 0:
            raise AnalysisInputError("no paired predictions to analyse: the capture is empty")
        for name in ("production", "shadow", "shadow_error", "production_ms", "shadow_ms"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise AnalysisInputError(
                    f"{name} has {len(value)} values but production_error has {n}: "
                    "every array must have one value per pair"
                )

    @property
    def size(self) -> int:
        return len(self.production_error)

    @property
    def both_ok(self) -> BoolArray:
        """Pairs where both sides returned a usable output."""
        return ~self.production_error & ~self.shadow_error

    def class_codes(self) -> tuple[IntArray, IntArray, list[str]]:
        """Labels (or the top class of probabilities) of the pairs both sides answered, as
        codes into the returned class names."""
        ok = self.both_ok
        if self.kind is OutputKind.LABELS:
            return self.production[ok], self.shadow[ok], [str(x) for x in self.labels]
        top_p = np.argmax(self.production[ok], axis=1)
        top_s = np.argmax(self.shadow[ok], axis=1)
        return top_p, top_s, [f"class {i}" for i in range(self.production.shape[1])]

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> PairedSample:
        """Pairs as captured: dicts with `production`, `shadow` (outputs, None when that side
        errored), and optional `production_ms`, `shadow_ms` (latency, ms, or None),
        `production_error`, `shadow_error` (str or None) and `request_id`."""
        if len(records) == 0:
            raise AnalysisInputError("no paired predictions to analyse: the capture is empty")
        try:
            production = [r["production"] for r in records]
            shadow = [r["shadow"] for r in records]
        except (KeyError, TypeError):
            raise AnalysisInputError(_bad_record(records)) from None
        p_err = [r.get("production_error") is not None for r in records]
        s_err = [r.get("shadow_error") is not None for r in records]
        p_ms = _latencies([r.get("production_ms") for r in records], "production_ms")
        s_ms = _latencies([r.get("shadow_ms") for r in records], "shadow_ms")
        notes: list[str] = []
        ids = [r.get("request_id") for r in records]
        if _any_hash(ids):
            repeat = _repeated_requests(ids)
            if repeat.any():
                for ms in (p_ms, s_ms):
                    if ms is not None:
                        ms[repeat] = np.nan
                notes.append(
                    f"{int(repeat.sum())} pairs share a request with another pair: "
                    "each request's latency counts once"
                )
        return _build(production, shadow, np.array(p_err), np.array(s_err), p_ms, s_ms, notes)

    @classmethod
    def from_arrays(
        cls,
        production: Sequence[Any] | npt.NDArray[Any],
        shadow: Sequence[Any] | npt.NDArray[Any],
        production_ms: Sequence[float | None] | npt.NDArray[Any] | None = None,
        shadow_ms: Sequence[float | None] | npt.NDArray[Any] | None = None,
        production_error: Sequence[bool] | npt.NDArray[Any] | None = None,
        shadow_error: Sequence[bool] | npt.NDArray[Any] | None = None,
    ) -> PairedSample:
        """Outputs as arrays or lists (same rules as `from_records`); errors default to none.
        In latency arrays NaN means "not measured", as None does in lists."""
        n = len(production)
        if len(shadow) != n:
            raise AnalysisInputError(
                f"production has {n} outputs but shadow has {len(shadow)}: "
                "paired outputs must have the same length"
            )
        if n == 0:
            raise AnalysisInputError("no paired predictions to analyse: the capture is empty")
        p_err = _flags(production_error, n, "production_error")
        s_err = _flags(shadow_error, n, "shadow_error")
        p_ms = None if production_ms is None else _latencies(production_ms, "production_ms", n)
        s_ms = None if shadow_ms is None else _latencies(shadow_ms, "shadow_ms", n)
        return _build(production, shadow, p_err, s_err, p_ms, s_ms, [])


# ---------------------------------------------------------------- records


def _bad_record(records: Sequence[Any]) -> str:
    for i, r in enumerate(records):
        if not isinstance(r, Mapping):
            return (
                f"record {i}: expected a mapping with production and shadow, got {type(r).__name__}"
            )
        for key in ("production", "shadow"):
            if key not in r:
                return f"record {i}: missing key {key!r}"
    return "records are not mappings with production and shadow"


def _any_hash(ids: list[Any]) -> bool:
    """Whether some request id names one instance of a batch (`<id>#<index>`)."""
    if {type(i) for i in ids} == {str}:
        return "#" in "\n".join(ids)  # one C-level scan instead of a million
    return any(isinstance(i, str) and "#" in i for i in ids)


def _repeated_requests(ids: list[Any]) -> BoolArray:
    seen: set[str] = set()
    repeat = np.zeros(len(ids), dtype=bool)
    for i, rid in enumerate(ids):
        if not isinstance(rid, str):
            continue
        base = rid.split("#", 1)[0]
        if base in seen:
            repeat[i] = True
        seen.add(base)
    return repeat


def _flags(values: Sequence[bool] | npt.NDArray[Any] | None, n: int, name: str) -> BoolArray:
    if values is None:
        return np.zeros(n, dtype=bool)
    flags = np.asarray(values)
    if flags.shape != (n,):
        raise AnalysisInputError(f"{name} has shape {flags.shape}, expected ({n},)")
    if flags.dtype == object:  # error messages (str or None), as captured
        return np.array([v is not None and v is not False for v in flags], dtype=bool)
    return flags.astype(bool)


def _latencies(
    values: Sequence[Any] | npt.NDArray[Any], name: str, n: int | None = None
) -> FloatArray | None:
    if n is not None and len(values) != n:
        raise AnalysisInputError(
            f"{name} has {len(values)} values but there are {n} pairs: "
            "latencies must have one value per pair"
        )
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        ms = values.astype(np.float64)
        bad = np.isinf(ms) | (ms < 0)  # NaN is allowed: not measured
        if bad.any():
            first = int(np.argmax(bad))
            raise AnalysisInputError(f"{name}[{first}]: {ms[first]} is not a latency in ms")
        return ms
    types = {type(v) for v in values}
    if types == {type(None)}:
        return None
    if types <= _PLAIN_NUMBERS:  # fast path: numpy turns None into NaN
        ms = np.array(values, dtype=np.float64)
        nones = sum(1 for v in values if v is None)
        if not np.any(np.isinf(ms) | (ms < 0)) and int(np.isnan(ms).sum()) == nones:
            return ms
    out = np.full(len(values), np.nan)  # slow path: find the record to name
    for i, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise AnalysisInputError(f"record {i}: {name} {v!r} is not a number of milliseconds")
        x = float(v)
        if not math.isfinite(x) or x < 0:
            raise AnalysisInputError(f"record {i}: {name} {v!r} is not a latency in ms")
        out[i] = x
    return out


# ---------------------------------------------------------------- classification


_NONE, _BOOL, _INT, _FLOAT, _STR, _VECTOR = "none", "bool", "int", "float", "str", "list"


def _category(value: Any) -> str | None:
    if value is None:
        return _NONE
    if isinstance(value, bool | np.bool_):
        return _BOOL
    if isinstance(value, int | np.integer):
        return _INT
    if isinstance(value, float | np.floating):
        return _FLOAT
    if isinstance(value, str):
        return _STR
    if isinstance(value, list | tuple | np.ndarray):
        return _VECTOR
    return None


@dataclass
class _Side:
    """One side's outputs after classification."""

    name: str
    category: str  # the common category of its outputs (_NONE when it never answered)
    values: list[Any] | npt.NDArray[Any]
    missing: BoolArray  # no output at all (None)
    plain: bool = False  # a list of only floats, ints and None: numpy converts it directly


def _classify(values: Sequence[Any] | npt.NDArray[Any], name: str) -> _Side:
    if isinstance(values, np.ndarray) and values.dtype != object:
        missing = np.zeros(len(values), dtype=bool)
        kind = values.dtype.kind
        if values.ndim == 2 and kind in "fiu":
            return _Side(name, _VECTOR, values.astype(np.float64), missing)
        if values.ndim != 1:
            raise AnalysisInputError(f"{name} outputs have shape {values.shape}: expected 1 or 2-D")
        category = {"f": _FLOAT, "i": _INT, "u": _INT, "b": _BOOL, "U": _STR}.get(kind)
        if category is None:
            raise AnalysisInputError(f"{name} outputs of dtype {values.dtype} are not supported")
        return _Side(name, category, values, missing)
    values = list(values)
    first: dict[str, int] = {}
    value_types = {type(v) for v in values}
    for t in value_types:
        sample = next(i for i, v in enumerate(values) if type(v) is t)
        category = _category(values[sample])
        if category is None:
            raise AnalysisInputError(
                f"record {sample}: {name} output of type {t.__name__} is not supported "
                "(numbers, labels, or lists of numbers)"
            )
        first[category] = min(first.get(category, sample), sample)
    types = set(first)
    missing = (
        np.fromiter((v is None for v in values), dtype=bool, count=len(values))
        if _NONE in types
        else np.zeros(len(values), dtype=bool)
    )
    plain = value_types <= _PLAIN_NUMBERS
    present = types - {_NONE}
    if present == {_INT, _FLOAT}:
        present = {_FLOAT}  # JSON writers drop ".0": ints among floats are numbers
    if len(present) > 1:
        (a, ia), (b, ib) = sorted(((c, first[c]) for c in present), key=lambda x: x[1])[:2]
        raise AnalysisInputError(
            f"mixed output types on the {name} side: {a} (record {ia}) and {b} (record {ib})"
        )
    return _Side(name, present.pop() if present else _NONE, values, missing, plain)


def _as_floats(side: _Side) -> FloatArray:
    if isinstance(side.values, np.ndarray):
        return side.values.astype(np.float64)
    if side.plain:
        return np.array(side.values, dtype=np.float64)  # None becomes NaN
    return np.array([np.nan if v is None else float(v) for v in side.values], dtype=np.float64)


def _as_matrix(side: _Side) -> FloatArray:
    if isinstance(side.values, np.ndarray):
        return side.values.astype(np.float64)
    width = None
    rows: list[list[float] | None] = []
    for i, v in enumerate(side.values):
        if v is None:
            rows.append(None)
            continue
        row = list(v)
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise AnalysisInputError(
                f"record {i}: {side.name} output has {len(row)} values, earlier ones {width}"
            )
        for x in row:
            if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
                raise AnalysisInputError(
                    f"record {i}: {side.name} output holds {type(x).__name__} {x!r}: "
                    "vectors must hold numbers"
                )
        rows.append([float(x) for x in row])
    width = width or 0
    out = np.full((len(rows), width), np.nan)
    for i, values in enumerate(rows):
        if values is not None:
            out[i] = values
    return out


def _build(
    production: Sequence[Any] | npt.NDArray[Any],
    shadow: Sequence[Any] | npt.NDArray[Any],
    p_err: BoolArray,
    s_err: BoolArray,
    p_ms: FloatArray | None,
    s_ms: FloatArray | None,
    notes: list[str],
) -> PairedSample:
    p, s = _classify(production, "production"), _classify(shadow, "shadow")
    for side, flags, err in (("production", p.missing, p_err), ("shadow", s.missing, s_err)):
        silent = int((flags & ~err).sum())
        if silent:
            notes.append(f"{silent} {side} outputs were empty without an error: counted as errors")
    p_err, s_err = p_err | p.missing, s_err | s.missing
    common: dict[str, Any] = {"production_ms": p_ms, "shadow_ms": s_ms}
    cats = {p.category, s.category} - {_NONE}

    if cats <= {_FLOAT}:  # also: neither side ever answered
        pv, sv = _as_floats(p), _as_floats(s)
        p_err = _non_finite(pv, p_err, "production", notes)
        s_err = _non_finite(sv, s_err, "shadow", notes)
        return PairedSample(OutputKind.NUMBERS, pv, sv, p_err, s_err, notes=tuple(notes), **common)

    if cats == {_INT, _FLOAT}:
        if not _integral_floats(p, s):
            _refuse_kinds(p, s)
        notes.append("integral float outputs are compared as integer labels")
        if p.category == _FLOAT:
            p_err = _float_labels(p, p_err, notes)
        else:
            s_err = _float_labels(s, s_err, notes)
    elif not cats <= {_INT, _STR, _BOOL} and cats != {_VECTOR}:
        _refuse_kinds(p, s)

    if cats != {_VECTOR}:
        pc, sc, labels = _encode_labels(p, s, notes)
        return PairedSample(
            OutputKind.LABELS, pc, sc, p_err, s_err, labels=labels, notes=tuple(notes), **common
        )

    pm, sm = _as_matrix(p), _as_matrix(s)
    if p.category == _NONE:
        pm = np.full((len(pm), sm.shape[1]), np.nan)
    if s.category == _NONE:
        sm = np.full((len(sm), pm.shape[1]), np.nan)
    if pm.shape[1] != sm.shape[1]:
        raise AnalysisInputError(
            f"production returns vectors of {pm.shape[1]} values, shadow of {sm.shape[1]}: "
            "the outputs cannot be paired"
        )
    if pm.shape[1] == 0:
        raise AnalysisInputError("outputs are empty lists: nothing to compare")
    p_err = _non_finite(pm, p_err, "production", notes)
    s_err = _non_finite(sm, s_err, "shadow", notes)
    if pm.shape[1] == 1:
        return PairedSample(
            OutputKind.NUMBERS, pm[:, 0], sm[:, 0], p_err, s_err, notes=tuple(notes), **common
        )
    kind = (
        OutputKind.PROBABILITIES
        if _probabilities(pm[~p_err]) and _probabilities(sm[~s_err])
        else OutputKind.VECTORS
    )
    return PairedSample(kind, pm, sm, p_err, s_err, notes=tuple(notes), **common)


def _refuse_kinds(p: _Side, s: _Side) -> NoReturn:
    names = {_FLOAT: "numbers", _INT: "integer labels", _STR: "string labels"}
    names |= {_BOOL: "boolean labels", _VECTOR: "lists of numbers"}
    pn = names.get(p.category, p.category)
    sn = names.get(s.category, s.category)
    extra = " (non-integral)" if {p.category, s.category} == {_INT, _FLOAT} else ""
    raise AnalysisInputError(
        f"production returns {pn}, shadow returns {sn}{extra}: the outputs cannot be paired"
    )


def _integral_floats(p: _Side, s: _Side) -> bool:
    """Ints on one side, floats on the other: True when the floats are whole numbers."""
    values = _as_floats(p if p.category == _FLOAT else s)
    values = values[np.isfinite(values)]
    return bool(np.all(values == np.round(values)))


def _float_labels(side: _Side, err: BoolArray, notes: list[str]) -> BoolArray:
    values = _as_floats(side)
    err = _non_finite(values, err, side.name, notes)
    side.values = [None if bad else int(v) for v, bad in zip(values.tolist(), err, strict=True)]
    side.category = _INT
    return err


def _non_finite(values: FloatArray, err: BoolArray, side: str, notes: list[str]) -> BoolArray:
    bad = ~np.isfinite(values) if values.ndim == 1 else ~np.isfinite(values).all(axis=1)
    new = bad & ~err
    if new.any():
        notes.append(f"{int(new.sum())} non-finite {side} outputs (NaN or inf) count as errors")
    return err | bad


def _probabilities(rows: FloatArray) -> bool:
    if len(rows) == 0:
        return True
    in_range = bool(np.all((rows >= -1e-9) & (rows <= 1 + 1e-9)))
    sums = np.abs(rows.sum(axis=1) - 1.0)
    return in_range and bool(np.all(sums <= _PROBABILITY_SUM_TOLERANCE))


def _encode_labels(
    p: _Side, s: _Side, notes: list[str]
) -> tuple[IntArray, IntArray, tuple[Any, ...]]:
    def values(side: _Side) -> list[Any]:
        raw = side.values.tolist() if isinstance(side.values, np.ndarray) else side.values
        if side.category == _INT:
            return [None if v is None else int(v) for v in raw]
        if side.category == _BOOL:
            return [None if v is None else bool(v) for v in raw]
        return list(raw)

    pv, sv = values(p), values(s)
    cats = {p.category, s.category} - {_NONE, _FLOAT}
    # a label's type is part of it: `1` and `"1"` differ, and so do `True` and `1`
    keyed = len(cats) > 1
    if keyed:
        notes.append(
            f"production labels are {p.category}, shadow labels are {s.category}: "
            "labels of different types never agree"
        )
    vocabulary: dict[Any, int] = {}

    def encode(vals: list[Any]) -> IntArray:
        out = np.empty(len(vals), dtype=np.int64)
        for i, v in enumerate(vals):
            if v is None:
                out[i] = -1
                continue
            key = (type(v).__name__, v) if keyed else v
            code = vocabulary.get(key)
            if code is None:
                code = vocabulary[key] = len(vocabulary)
            out[i] = code
        return out

    pc, sc = encode(pv), encode(sv)
    labels = tuple(k[1] if keyed else k for k in vocabulary)
    return pc, sc, labels
