"""Captured pairs into a PairedSample: kinds, documented treatments, and refusals."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.analysis import AnalysisInputError, OutputKind, PairedSample, analyze
from core.ports import InvalidInput


def rec(production: Any, shadow: Any, **kw: Any) -> dict[str, Any]:
    return {"production": production, "shadow": shadow, **kw}


def test_the_error_is_a_port_error_and_a_value_error() -> None:
    with pytest.raises(InvalidInput):
        PairedSample.from_records([])
    with pytest.raises(ValueError, match="empty"):
        PairedSample.from_records([])


def test_numbers_with_latencies_and_errors_as_captured() -> None:
    records = [
        rec(1.5, 1.25, production_ms=3.0, shadow_ms=4.0),
        rec(2.0, None, production_ms=2.0, shadow_ms=None, shadow_error="timeout"),
        rec(3, 3.5, production_ms=1.0, shadow_ms=1.5, production_error=None, shadow_error=None),
    ]
    s = PairedSample.from_records(records)
    assert s.kind is OutputKind.NUMBERS
    assert s.size == 3
    assert s.production.tolist() == [1.5, 2.0, 3.0]  # an int among floats is a number
    assert s.shadow_error.tolist() == [False, True, False]
    assert s.both_ok.tolist() == [True, False, True]
    assert s.production_ms is not None and s.shadow_ms is not None
    assert math.isnan(s.shadow_ms[1])


def test_labels_of_each_type() -> None:
    ints = PairedSample.from_records([rec(0, 1), rec(1, 1), rec(2, 0)])
    assert ints.kind is OutputKind.LABELS
    assert [ints.labels[c] for c in ints.production] == [0, 1, 2]
    strings = PairedSample.from_records([rec("cat", "dog"), rec("dog", "dog")])
    assert strings.kind is OutputKind.LABELS
    assert [strings.labels[c] for c in strings.shadow] == ["dog", "dog"]
    flags = PairedSample.from_records([rec(True, False), rec(False, False)])
    assert flags.kind is OutputKind.LABELS
    assert flags.production.tolist() != flags.shadow.tolist()


def test_labels_of_different_types_never_agree() -> None:
    s = PairedSample.from_records([rec(1, "1"), rec(0, "0")] * 60)
    assert s.kind is OutputKind.LABELS
    assert np.all(s.production != s.shadow)
    assert any("never agree" in n for n in s.notes)
    assert analyze(s).verdict == "fail"


def test_integer_labels_against_integral_floats_compare_as_labels() -> None:
    s = PairedSample.from_records([rec(1, 1.0), rec(0, 0.0), rec(2, 1.0)])
    assert s.kind is OutputKind.LABELS
    assert (s.production == s.shadow).tolist() == [True, True, False]
    assert any("integral float" in n for n in s.notes)


def test_integer_labels_against_fractional_numbers_are_refused() -> None:
    with pytest.raises(AnalysisInputError, match="integer labels, shadow returns numbers"):
        PairedSample.from_records([rec(1, 0.7), rec(0, 0.2)])


def test_probability_vectors_and_other_vectors() -> None:
    probs = PairedSample.from_records([rec([0.2, 0.8], [0.3, 0.7]), rec([1.0, 0.0], [0.9, 0.1])])
    assert probs.kind is OutputKind.PROBABILITIES
    assert probs.production.shape == (2, 2)
    vectors = PairedSample.from_records([rec([1.0, 5.0], [1.1, 5.2]), rec([2, 3], [2, 3])])
    assert vectors.kind is OutputKind.VECTORS
    single = PairedSample.from_records([rec([1.0], [1.5]), rec([2.0], [2.5])])
    assert single.kind is OutputKind.NUMBERS  # a list of one number is a number
    assert single.shadow.tolist() == [1.5, 2.5]


def test_non_finite_outputs_count_as_errors_of_their_side() -> None:
    s = PairedSample.from_records(
        [rec(1.0, float("nan")), rec(2.0, float("inf")), rec(float("-inf"), 3.0), rec(4.0, 4.0)]
    )
    assert s.shadow_error.tolist() == [True, True, False, False]
    assert s.production_error.tolist() == [False, False, True, False]
    assert any("non-finite shadow" in n for n in s.notes)
    vec = PairedSample.from_records(
        [rec([0.5, 0.5], [float("nan"), 1.0]), rec([0.5, 0.5], [0.5, 0.5])]
    )
    assert vec.shadow_error.tolist() == [True, False]


def test_an_empty_output_without_an_error_counts_as_an_error() -> None:
    s = PairedSample.from_records([rec(None, 1.0), rec(1.0, 1.0)])
    assert s.production_error.tolist() == [True, False]
    assert any("empty without an error" in n for n in s.notes)


def test_shadow_that_returns_nan_where_production_does_not_fails() -> None:
    rng = np.random.default_rng(3)
    p = rng.normal(size=2000)
    s = p.copy()
    s[rng.random(2000) < 0.05] = np.nan  # 5 % NaN answers: far above the 1 % allowance
    v = analyze(PairedSample.from_arrays(p, s))
    assert v.verdict == "fail"
    assert v.metric("error_rate").outcome == "fail"


def test_a_side_that_always_failed_fails_the_error_rate() -> None:
    records = [rec(float(i), None, shadow_error="boom") for i in range(300)]
    v = analyze(PairedSample.from_records(records))
    assert v.compared == 0
    assert v.verdict == "fail"
    assert "error rate" in v.summary


def test_both_sides_always_failing_is_inconclusive_not_pass() -> None:
    records = [rec(None, None, production_error="x", shadow_error="y") for _ in range(300)]
    v = analyze(PairedSample.from_records(records))
    assert v.verdict == "inconclusive"
    assert "no pair where both versions answered" in v.summary


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([rec({"a": 1}, {"a": 1})], "record 0: production output of type dict"),
        ([rec(1.0, 1.0), rec("x", 2.0)], "mixed output types on the production side: float"),
        ([rec(1.0, 1.0), rec(2.0, [1.0])], "mixed output types on the shadow side"),
        (
            [rec([1.0, 2.0], [1.0, 2.0]), rec([1.0, 2.0], [1.0])],
            "record 1: shadow output has 1 values",
        ),
        ([rec([1.0, 2.0], [1.0, 2.0, 0.0])], "vectors of 2 values, shadow of 3"),
        ([rec([1.0, "a"], [1.0, 2.0])], "record 0: production output holds str"),
        ([rec("a", [1.0])], "production returns string labels, shadow returns lists"),
        ([rec(1.0, 1.0, production_ms=-1.0)], "record 0: production_ms -1.0 is not a latency"),
        ([rec(1.0, 1.0, shadow_ms=float("nan"))], "record 0: shadow_ms nan is not a latency"),
        ([rec(1.0, 1.0, shadow_ms="5")], "record 0: shadow_ms '5' is not a number"),
        ([rec(1.0, 1.0), {"production": 1.0}], "record 1: missing key 'shadow'"),
        ([rec(1.0, 1.0), [1.0, 2.0]], "record 1: expected a mapping"),
        ([], "the capture is empty"),
    ],
)
def test_bad_data_is_refused_with_one_line_naming_the_record(
    records: list[Any], message: str
) -> None:
    with pytest.raises(AnalysisInputError) as info:
        PairedSample.from_records(records)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(AnalysisInputError, match="production has 3 outputs but shadow has 2"):
        PairedSample.from_arrays([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(AnalysisInputError, match="latencies must have one value per pair"):
        PairedSample.from_arrays([1.0, 2.0], [1.0, 2.0], production_ms=[1.0])
    with pytest.raises(AnalysisInputError, match=r"shadow_error has shape \(1,\)"):
        PairedSample.from_arrays([1.0, 2.0], [1.0, 2.0], shadow_error=[False])
    with pytest.raises(AnalysisInputError, match="empty"):
        PairedSample.from_arrays([], [])


def test_pairs_of_one_request_count_its_latency_once() -> None:
    records = [
        rec(1.0, 1.0, request_id="a#0", production_ms=5.0, shadow_ms=6.0),
        rec(2.0, 2.0, request_id="a#1", production_ms=5.0, shadow_ms=6.0),
        rec(3.0, 3.0, request_id="b", production_ms=7.0, shadow_ms=8.0),
    ]
    s = PairedSample.from_records(records)
    assert s.production_ms is not None
    assert np.isnan(s.production_ms).tolist() == [False, True, False]
    assert any("share a request" in n for n in s.notes)


def test_captured_pair_dumps_are_accepted_as_records() -> None:
    from core.ports import CapturedPair

    pairs = [
        CapturedPair(
            request_id=f"r{i}", input=[1, 2], production=0.5 * i, shadow=0.5 * i,
            production_variant="p", shadow_variant="s", production_ms=1.0 + i, shadow_ms=1.5,
        ).model_dump()
        for i in range(5)
    ]  # fmt: skip
    s = PairedSample.from_records(pairs)
    assert s.kind is OutputKind.NUMBERS and s.size == 5


_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["a", "b", "1"]),
)
_json_value = st.one_of(
    _json_scalar,
    st.lists(_json_scalar, max_size=3),
    st.dictionaries(st.text(max_size=2), _json_scalar, max_size=1),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(_json_value, _json_value, st.none() | st.just("err"), st.none() | st.just("err")),
        min_size=1,
        max_size=40,
    )
)
def test_any_capture_gives_a_verdict_or_a_clear_refusal(rows: list[tuple[Any, ...]]) -> None:
    records = [rec(p, s, production_error=pe, shadow_error=se) for p, s, pe, se in rows]
    try:
        sample = PairedSample.from_records(records)
    except AnalysisInputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    verdict = analyze(sample)
    # fewer than min_pairs (100) pairs can never pass
    assert verdict.verdict in ("fail", "inconclusive")
    json.dumps(verdict.to_public(), allow_nan=False)
