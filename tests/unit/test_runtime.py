"""The standard runtime on real tiny models: loading, predicting, golden data, the cache."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import Ridge

from core.domain import Library
from core.ports import InvalidInput, PortError
from core.runtime import (
    GoldenCase,
    LoadedModel,
    check_golden,
    clear_cache,
    detect_format,
    load_model,
    load_model_cached,
    read_golden,
)
from tests.support.models import (
    FlakyRegressor,
    sample_instances,
    train_flaky_regressor,
    train_onnx,
    train_sklearn_classifier,
    train_sklearn_regressor,
    train_slow_regressor,
    train_xgboost,
    write_broken_artifact,
    write_golden,
)


@dataclass(frozen=True)
class Kind:
    id: str
    library: Library
    train: Callable[[Path], Path]
    output: type  # the plain Python type of one prediction
    fmt: str


KINDS = [
    Kind("sklearn-regressor", Library.SKLEARN, train_sklearn_regressor, float, "joblib"),
    Kind(
        "sklearn-regressor-pickle",
        Library.SKLEARN,
        lambda d: train_sklearn_regressor(d, fmt="pickle"),
        float,
        "pickle",
    ),
    Kind("sklearn-classifier", Library.SKLEARN, train_sklearn_classifier, int, "joblib"),
    Kind(
        "sklearn-classifier-str",
        Library.SKLEARN,
        lambda d: train_sklearn_classifier(d, string_labels=True),
        str,
        "joblib",
    ),
    Kind("xgboost-regressor-json", Library.XGBOOST, train_xgboost, float, "json"),
    Kind(
        "xgboost-binary-ubj",
        Library.XGBOOST,
        lambda d: train_xgboost(d, kind="binary", fmt="ubj"),
        int,
        "ubj",
    ),
    Kind(
        "xgboost-multiclass-json",
        Library.XGBOOST,
        lambda d: train_xgboost(d, kind="multiclass"),
        int,
        "json",
    ),
    Kind(
        "xgboost-regressor-joblib",
        Library.XGBOOST,
        lambda d: train_xgboost(d, fmt="joblib"),
        float,
        "joblib",
    ),
    Kind("onnx-regressor", Library.ONNX, train_onnx, float, "onnx"),
    Kind("onnx-classifier", Library.ONNX, lambda d: train_onnx(d, kind="classifier"), int, "onnx"),
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("artifacts")
    return {kind.id: kind.train(folder) for kind in KINDS}


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def _expect_invalid(match: str, call: Callable[[], object]) -> str:
    with pytest.raises(InvalidInput, match=match) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- loading and predicting


@pytest.mark.parametrize("kind", KINDS, ids=[k.id for k in KINDS])
def test_each_kind_loads_and_predicts_lists_and_objects(
    kind: Kind, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    path = artifacts[kind.id]
    assert detect_format(path, kind.library) == kind.fmt
    model = load_model(path, kind.library)
    assert model.library is kind.library
    assert model.n_features is not None
    as_lists = model.predict(sample_instances(model.n_features, 12))
    as_objects = model.predict(sample_instances(model.n_features, 12, as_dicts=True))
    assert len(as_lists) == 12
    assert as_lists == as_objects
    assert all(type(p) is kind.output for p in as_lists)
    json.dumps(as_lists)  # plain Python values only
    if kind.output is not float:
        assert len(set(as_lists)) > 1, "the samples should span several classes"
    assert model.predict([]) == []

    golden = write_golden(path, kind.library, tmp_path, n=30)
    report = check_golden(model, read_golden(golden))
    assert report.passed, report.summary()
    assert (report.total, report.mismatches) == (30, [])


@pytest.mark.parametrize(
    ("native", "estimator"),
    [
        ({"kind": "binary", "fmt": "json"}, {"kind": "binary", "fmt": "joblib"}),
        ({"kind": "multiclass", "fmt": "ubj"}, {"kind": "multiclass", "fmt": "joblib"}),
        ({"fmt": "ubj"}, {"fmt": "joblib"}),
    ],
)
def test_native_xgboost_files_answer_what_the_sklearn_wrapper_predicts(
    native: dict[str, Any], estimator: dict[str, Any], tmp_path: Path
) -> None:
    saved = load_model(train_xgboost(tmp_path, seed=3, **native), Library.XGBOOST)
    pickled = joblib.load(train_xgboost(tmp_path, seed=3, **estimator))
    assert saved.n_features is not None
    rows = sample_instances(saved.n_features, 40)
    expected = pickled.predict(np.asarray(rows)).tolist()
    assert saved.predict(rows) == pytest.approx(expected, abs=1e-6)


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_sklearn_predictions_equal_the_estimators_own(artifacts: dict[str, Path]) -> None:
    path = artifacts["sklearn-regressor"]
    rows = sample_instances(10, 15)
    expected = joblib.load(path).predict(np.asarray(rows)).tolist()
    assert load_model(path, Library.SKLEARN).predict(rows) == expected


def test_null_is_a_missing_value_for_xgboost(artifacts: dict[str, Path]) -> None:
    model = load_model(artifacts["xgboost-regressor-json"], Library.XGBOOST)
    row = sample_instances(10, 1)[0]
    row[2] = None
    [prediction] = model.predict([row])
    assert isinstance(prediction, float)


def test_a_joblib_dump_named_pkl_is_detected_as_joblib(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    joblib.dump(Ridge(alpha=1e-9).fit([[0.0], [1.0]], [0.0, 1.0]), path, compress=3)
    assert detect_format(path, Library.SKLEARN) == "joblib"
    assert load_model(path, Library.SKLEARN).predict([[2.0]]) == [pytest.approx(2.0, abs=0.5)]


def test_an_unknown_suffix_is_told_by_content(artifacts: dict[str, Path], tmp_path: Path) -> None:
    for source, library, fmt in [
        ("xgboost-regressor-json", Library.XGBOOST, "json"),
        ("xgboost-binary-ubj", Library.XGBOOST, "ubj"),
        ("sklearn-regressor-pickle", Library.SKLEARN, "pickle"),
        ("onnx-regressor", Library.ONNX, "onnx"),
    ]:
        copy = tmp_path / f"{source}.model"
        shutil.copyfile(artifacts[source], copy)
        assert detect_format(copy, library) == fmt
        model = load_model(copy, library)
        assert model.n_features is not None
        assert len(model.predict(sample_instances(model.n_features, 2))) == 2


@pytest.mark.parametrize(
    ("source", "library", "match"),
    [
        ("xgboost-regressor-json", Library.SKLEARN, r"sklearn takes joblib or pickle, not json"),
        ("sklearn-regressor", Library.ONNX, r"onnx takes onnx, not joblib"),
        ("onnx-regressor", Library.XGBOOST, r"not onnx"),
        ("onnx-regressor", Library.SKLEARN, r"not onnx"),
    ],
)
def test_a_library_refuses_formats_it_does_not_take(
    source: str, library: Library, match: str, artifacts: dict[str, Path]
) -> None:
    message = _expect_invalid(match, lambda: load_model(artifacts[source], library))
    assert f"not a loadable {library} model" in message
    assert artifacts[source].name in message


def test_a_name_that_contradicts_the_content_is_refused(
    artifacts: dict[str, Path], tmp_path: Path
) -> None:
    liar = tmp_path / "model.json"
    shutil.copyfile(artifacts["sklearn-regressor"], liar)
    _expect_invalid(
        r"named \.json but the content is a pickle", lambda: detect_format(liar, "xgboost")
    )


def test_empty_missing_and_unrecognisable_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.joblib"
    empty.write_bytes(b"")
    _expect_invalid(
        r"empty\.joblib: not a loadable sklearn model \(the file is empty\)",
        lambda: load_model(empty, "sklearn"),
    )
    _expect_invalid(
        r"missing\.onnx: .*No such file", lambda: load_model(tmp_path / "missing.onnx", "onnx")
    )
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"binf\x00\x00\x00")
    _expect_invalid(r"cannot tell the format .*\.json, \.ubj", lambda: load_model(odd, "xgboost"))


def test_an_unknown_library_is_invalid_input(artifacts: dict[str, Path]) -> None:
    path = artifacts["sklearn-regressor"]
    known = r"unknown model library 'torch' \(known: sklearn, xgboost, onnx\)"
    _expect_invalid(known, lambda: load_model(path, "torch"))
    _expect_invalid(known, lambda: load_model_cached(path, "torch"))
    _expect_invalid(known, lambda: detect_format(path, "torch"))


@pytest.mark.parametrize("library", list(Library))
def test_a_broken_artifact_is_invalid_input(library: Library, tmp_path: Path) -> None:
    path = write_broken_artifact(tmp_path, library)
    message = _expect_invalid(
        rf"broken\.\w+: not a loadable {library} model \(.+\)", lambda: load_model(path, library)
    )
    assert str(path) in message


def test_objects_that_are_not_usable_models_are_refused(tmp_path: Path) -> None:
    no_predict = tmp_path / "dict.joblib"
    joblib.dump({"weights": [1, 2]}, no_predict)
    _expect_invalid(
        r"holds a dict, which has no predict\(\)", lambda: load_model(no_predict, "sklearn")
    )
    unfitted = tmp_path / "unfitted.joblib"
    joblib.dump(Ridge(), unfitted)
    _expect_invalid(r"the Ridge is not fitted", lambda: load_model(unfitted, "sklearn"))
    ridge = train_sklearn_regressor(tmp_path)
    _expect_invalid(r"holds a Ridge, not an xgboost", lambda: load_model(ridge, "xgboost"))


def test_an_onnx_model_with_two_inputs_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"])],
        "two-inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 2]),
        ],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, [None, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "two.onnx"
    path.write_bytes(model.SerializeToString())
    _expect_invalid(
        r"it has 2 inputs \('a', 'b'\); only single-input", lambda: load_model(path, "onnx")
    )


# ---------------------------------------------------------------- bad instances


@pytest.fixture(scope="module")
def regressor(artifacts: dict[str, Path]) -> LoadedModel:
    return load_model(artifacts["xgboost-regressor-json"], Library.XGBOOST)


@pytest.mark.parametrize(
    ("instances", "match"),
    [
        ([[1.0, 2.0, 3.0]], r"instance 0 has 3 features; the model expects 10"),
        ([sample_instances(10, 1)[0], [1.0]], r"instance 1 has 1 features; the model expects 10"),
        (
            [{"age": 1.0}],
            r"instance 0: missing feature\(s\) 'sex', 'bmi', 'bp', 's1', 's2' and 4 more",
        ),
        (
            [{**sample_instances(10, 1, as_dicts=True)[0], "agee": 1}],
            r"unknown feature\(s\) 'agee'",
        ),
        (
            [[*sample_instances(10, 1)[0][:9], "high"]],
            r"instance 0, feature 9 \('s6'\): expected a number or null, got a string",
        ),
        ([[*sample_instances(10, 1)[0][:9], [1]]], r"got a list"),
        (["1,2,3"], r"instance 0 must be a list of features or an object"),
        ({"instances": []}, r"instances must be a list, not an object"),
    ],
)
def test_instances_that_do_not_fit_name_the_reason(
    regressor: LoadedModel, instances: Any, match: str
) -> None:
    message = _expect_invalid(match, lambda: regressor.predict(instances))
    assert message.startswith("xgboost-regressor-seed0.json: ")


def test_objects_need_a_recorded_feature_order(tmp_path: Path) -> None:
    model = load_model(train_onnx(tmp_path, feature_names=False), Library.ONNX)
    assert model.feature_names is None
    assert len(model.predict(sample_instances(10, 2))) == 2
    _expect_invalid(
        r"instance 0 is an object, but the model records no feature names, so their order is "
        r"unknown; send a list of 10 features",
        lambda: model.predict(sample_instances(10, 1, as_dicts=True)),
    )


def test_a_model_that_raises_gives_one_line_invalid_input(tmp_path: Path) -> None:
    model = load_model(train_flaky_regressor(tmp_path, threshold=0.0), Library.SKLEARN)
    assert model.predict([[-0.01] * 10]) != []
    _expect_invalid(
        r"flaky-regressor-t0-seed0\.joblib: predict failed: ValueError: first feature 0\.5 "
        r"exceeds the threshold 0",
        lambda: model.predict([[-0.01] * 10, [0.5] * 10]),
    )


# ---------------------------------------------------------------- golden data: reading


def _golden_file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "golden.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = '{"input": [1, 2.5, null, "red"], "output": 3.5}'


def test_golden_lines_parse_with_their_line_numbers(tmp_path: Path) -> None:
    path = _golden_file(
        tmp_path, GOOD, "", "   ", '{"output": ["a", true], "input": {"x": 1}}\r', GOOD
    )
    assert read_golden(path) == [
        GoldenCase(line=1, input=[1, 2.5, None, "red"], output=3.5),
        GoldenCase(line=4, input={"x": 1}, output=["a", True]),
        GoldenCase(line=5, input=[1, 2.5, None, "red"], output=3.5),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"input": [1, 2], "output": ', r"not valid JSON \(Expecting value at column 28\)"),
        ("[1, 2]", r'expected an object with "input" and "output", got a list'),
        ('{"input": [1, 2]}', r"missing key 'output'"),
        ('{"output": 1}', r"missing key 'input'"),
        ('{"input": [1], "output": 1, "expected": 2}', r"unknown key 'expected'"),
        ('{"input": [1], "output": 1, "input": [2]}', r"duplicate key 'input'"),
        ('{"input": "1,2", "output": 1}', r"input is a string; expected a list or an object"),
        ('{"input": [], "output": 1}', r"input is empty"),
        ('{"input": [1, [2]], "output": 1}', r"input\[1\] is a list; a feature is a number"),
        ('{"input": {"a": {"b": 1}}, "output": 1}', r"input\['a'\] is an object"),
        ('{"input": [1], "output": null}', r"output is null; expected a number, string"),
        ('{"input": [1], "output": {"label": 1}}', r"output is an object"),
        ('{"input": [1], "output": NaN}', r"NaN is not a number golden data can hold"),
        ('{"input": [Infinity], "output": 1}', r"Infinity is not a number"),
        ('{"input": [1], "output": 1e999}', r"number 1e999 is out of range"),
    ],
)
def test_each_kind_of_bad_golden_line_is_named_with_its_number(
    line: str, reason: str, tmp_path: Path
) -> None:
    path = _golden_file(tmp_path, GOOD, "", line, GOOD)
    message = _expect_invalid(reason, lambda: read_golden(path))
    assert message.startswith(f"{path}: line 3: ")


def test_the_first_bad_golden_line_is_named_and_the_others_counted(tmp_path: Path) -> None:
    path = _golden_file(tmp_path, GOOD, "{", GOOD, '{"input": [1]}', "nope")
    _expect_invalid(
        r"line 2: not valid JSON .* \(and 2 more bad lines\)$", lambda: read_golden(path)
    )


def test_empty_unreadable_and_missing_golden_files_are_refused(tmp_path: Path) -> None:
    _expect_invalid(
        r"no golden cases \(the file is empty\)",
        lambda: read_golden(_golden_file(tmp_path, "", " ")),
    )
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(GOOD.encode() + b'\n{"input": [1], "output": "caf\xe9"}\n')
    _expect_invalid(r"latin\.jsonl: line 2: not UTF-8 text", lambda: read_golden(latin))
    _expect_invalid(
        r"absent\.jsonl: cannot read golden data", lambda: read_golden(tmp_path / "absent.jsonl")
    )


# ---------------------------------------------------------------- golden data: checking


def _rewrite_outputs(path: Path, changes: dict[int, Any]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, output in changes.items():
        case = json.loads(lines[number - 1])
        case["output"] = output
        lines[number - 1] = json.dumps(case)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_every_mismatch_is_reported_with_its_line(
    artifacts: dict[str, Path], tmp_path: Path
) -> None:
    path = artifacts["sklearn-classifier-str"]
    golden = write_golden(path, Library.SKLEARN, tmp_path, n=25)
    _rewrite_outputs(golden, {3: "nope", 11: 2, 19: "nope"})
    report = check_golden(load_model(path, Library.SKLEARN), read_golden(golden))
    assert not report.passed
    assert [(m.line, m.expected) for m in report.mismatches] == [(3, "nope"), (11, 2), (19, "nope")]
    assert [m.reason for m in report.mismatches] == [
        "strings differ",
        "expected a number, got a string",
        "strings differ",
    ]
    got = report.mismatches[0].got
    assert got in {"setosa", "versicolor", "virginica"}
    assert report.summary() == (
        f"golden data: 22/25 cases match (tolerance 1e-06); first mismatch at line 3: "
        f'expected "nope", got "{got}"'
    )


def test_a_different_model_fails_on_every_case(tmp_path: Path) -> None:
    golden = write_golden(train_sklearn_regressor(tmp_path), Library.SKLEARN, tmp_path, n=20)
    shifted = load_model(train_sklearn_regressor(tmp_path, shift=0.5), Library.SKLEARN)
    report = check_golden(shifted, read_golden(golden))
    assert (report.passed, report.total, len(report.mismatches)) == (False, 20, 20)
    assert [m.line for m in report.mismatches] == list(range(1, 21))
    assert all(m.reason == "differs by 0.5" for m in report.mismatches)
    first = report.mismatches[0]
    assert first.got == pytest.approx(first.expected + 0.5)


def test_the_tolerance_is_honoured(tmp_path: Path) -> None:
    golden = read_golden(write_golden(train_sklearn_regressor(tmp_path), Library.SKLEARN, tmp_path))
    candidate = load_model(train_sklearn_regressor(tmp_path, shift=1e-3), Library.SKLEARN)
    assert check_golden(candidate, golden, tolerance=2e-3).passed
    strict = check_golden(candidate, golden, tolerance=5e-4)
    assert len(strict.mismatches) == len(golden)
    assert strict.summary().startswith("golden data: 0/20 cases match (tolerance 0.0005)")
    assert not check_golden(candidate, golden).passed
    with pytest.raises(InvalidInput, match="tolerance must be a number >= 0"):
        check_golden(candidate, golden, tolerance=-1.0)


def test_cases_the_model_cannot_predict_are_mismatches(tmp_path: Path) -> None:
    # FlakyRegressor and SlowRegressor fit the same least squares: same predictions.
    golden = read_golden(
        write_golden(train_slow_regressor(tmp_path, 0), Library.SKLEARN, tmp_path, n=40)
    )
    flaky = load_model(train_flaky_regressor(tmp_path, threshold=0.05), Library.SKLEARN)
    failing = [c.line for c in golden if isinstance(c.input, list) and c.input[0] > 0.05]
    assert 0 < len(failing) < len(golden)
    report = check_golden(flaky, golden)
    assert [m.line for m in report.mismatches] == failing
    assert all(m.got is None and m.reason.startswith("predict failed: ") for m in report.mismatches)
    assert "exceeds the threshold 0.05" in report.summary()
    assert ", predict failed: " in report.summary()


@dataclass
class Echo:
    """Answers each instance's "value" feature: golden outputs meet exact values."""

    library: Library = Library.SKLEARN

    def predict(self, instances: list[Any]) -> list[Any]:
        return [instance["value"] for instance in instances]


@pytest.mark.parametrize(
    ("expected", "got", "reason"),
    [
        (1, 1.0, None),
        (1.0, 1.0000005, None),
        (1.0, 1.00001, "differs by 1e-05"),
        (3, 4, "differs by 1"),
        (True, True, None),
        (True, 1, "expected a boolean, got a number"),
        (0, False, "expected a number, got a boolean"),
        ("a", "a", None),
        ("1", 1, "expected a string, got a number"),
        ([1.0, "x"], [1.0, "x"], None),
        ([1.0, 2.0], [1.0, 2.1], "item 1: differs by 0.1"),
        ([1.0, 2.0], [1.0], "expected 2 values, got 1"),
        (1.0, [1.0], "expected a number, got a list"),
        (1.0, float("nan"), "got NaN"),
    ],
)
def test_values_are_compared_by_kind(expected: Any, got: Any, reason: str | None) -> None:
    report = check_golden(Echo(), [GoldenCase(line=1, input={"value": got}, output=expected)])
    assert report.passed is (reason is None)
    assert [m.reason for m in report.mismatches] == ([] if reason is None else [reason])


def test_checking_no_cases_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="no cases to check"):
        check_golden(Echo(), [])


def test_a_predictor_that_miscounts_is_a_port_error() -> None:
    class Short:
        library = Library.ONNX

        def predict(self, instances: list[Any]) -> list[Any]:
            return instances[1:]

    with pytest.raises(PortError, match="gave 1 predictions for 2 instances"):
        check_golden(Short(), [GoldenCase(line=n, input=[n], output=n) for n in (1, 2)])


def test_golden_is_checked_in_batches(artifacts: dict[str, Path], tmp_path: Path) -> None:
    path = artifacts["onnx-regressor"]
    golden = read_golden(write_golden(path, Library.ONNX, tmp_path, n=600, as_dicts=True))
    report = check_golden(load_model(path, Library.ONNX), golden)
    assert (report.passed, report.total) == (True, 600)


# ---------------------------------------------------------------- cache


def test_the_cache_returns_the_same_model_until_the_file_changes(tmp_path: Path) -> None:
    path = train_sklearn_regressor(tmp_path)
    first = load_model_cached(path, Library.SKLEARN)
    assert load_model_cached(path, "sklearn") is first
    assert load_model_cached(tmp_path / ".." / tmp_path.name / path.name, Library.SKLEARN) is first

    train_sklearn_regressor(tmp_path, shift=2.0).replace(path)
    stamp = path.stat()
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
    reloaded = load_model_cached(path, Library.SKLEARN)
    assert reloaded is not first
    row = sample_instances(10, 1)
    assert reloaded.predict(row)[0] == pytest.approx(first.predict(row)[0] + 2.0)

    clear_cache()
    assert load_model_cached(path, Library.SKLEARN) is not reloaded


def test_concurrent_cached_loads_share_one_model(artifacts: dict[str, Path]) -> None:
    path = artifacts["onnx-classifier"]
    results: list[LoadedModel] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def load() -> None:
        start.wait()
        model = load_model_cached(path, Library.ONNX)
        with lock:
            results.append(model)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert all(model is results[0] for model in results)


def test_failed_loads_are_not_cached(tmp_path: Path) -> None:
    path = write_broken_artifact(tmp_path)
    with pytest.raises(InvalidInput):
        load_model_cached(path, Library.SKLEARN)
    joblib.dump(FlakyRegressor().fit(np.eye(3), np.array([1.0, 2.0, 3.0])), path)
    assert load_model_cached(path, Library.SKLEARN).predict([[0.0, 0.0, 0.0]]) != []
