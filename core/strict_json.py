"""Reading JSON strictly: Python's json takes NaN, Infinity and -Infinity, and reads a number
such as 1e999 as an infinity; JSON has no such numbers. Each reader says what it raises, so
its messages stay its own.

Light to import (json and typing only; collections.abc comes with typing): the CLI's
start-up path reaches it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn

ErrorFor = Callable[[str], Exception]
"""Builds the exception to raise from the text refused: `NaN`, `-Infinity`, `1e999`."""

PairsHook = Callable[[list[tuple[str, Any]]], Any]

_INFINITY = float("inf")


def refuse_constant(error: ErrorFor) -> Callable[[str], NoReturn]:
    """A `parse_constant` hook that raises `error(name)` for NaN, Infinity and -Infinity."""

    def parse_constant(name: str) -> NoReturn:
        raise error(name)

    return parse_constant


def finite_float(error: ErrorFor) -> Callable[[str], float]:
    """A `parse_float` hook that raises `error(text)` for a number too big for a float."""

    def parse_float(text: str) -> float:
        value = float(text)
        if abs(value) == _INFINITY:  # a JSON number is never NaN: not finite is infinite
            raise error(text)
        return value

    return parse_float


def strict_loads(
    text: str,
    constant: ErrorFor,
    *,
    out_of_range: ErrorFor | None = None,
    object_pairs_hook: PairsHook | None = None,
) -> Any:
    """`json.loads(text)` refusing NaN, Infinity and -Infinity with `constant(name)` and, with
    `out_of_range`, numbers that overflow a float (1e999) with `out_of_range(text)`; anything
    else fails as in json.loads (JSONDecodeError, RecursionError, ...)."""
    return json.loads(
        text,
        parse_constant=refuse_constant(constant),
        parse_float=None if out_of_range is None else finite_float(out_of_range),
        object_pairs_hook=object_pairs_hook,
    )


def strict_decoder(constant: ErrorFor, *, out_of_range: ErrorFor | None = None) -> json.JSONDecoder:
    """A decoder with strict_loads's refusals, to build once where JSON is read per request.
    (Its `decode` takes str only and skips json.loads's check for a leading BOM.)"""
    return json.JSONDecoder(
        parse_constant=refuse_constant(constant),
        parse_float=None if out_of_range is None else finite_float(out_of_range),
    )
