"""Input that does not fit a model is the caller's error; a model that raises on input that
fits is the model's (`ModelFailed`): the gateway answers 400 for one and 502 for the other, and
only the second counts against the variant."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from core.domain import Library
from core.gateway.predictors import LoadedVariant, predict_timed
from core.ports import InvalidInput, Variant
from core.runtime import LoadedModel, ModelFailed, load_model
from tests.support.models import (
    sample_instances,
    train_flaky_regressor,
    train_onnx,
    train_sklearn_regressor,
    train_xgboost,
)

# The runtime silences it process-wide, but pytest resets warning filters per test.
pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def ridge(folder: Path) -> LoadedModel:
    """An sklearn Ridge: it refuses NaN, and strings, inside `predict`."""
    return load_model(train_sklearn_regressor(folder), Library.SKLEARN)


def train_hist_gradient_boosting(folder: Path) -> Path:
    """An sklearn model that takes missing values."""
    x = sample_instances(10, 200)
    model = HistGradientBoostingRegressor(max_iter=10).fit(x, [row[0] + row[2] for row in x])
    path = folder / "hgb.joblib"
    joblib.dump(model, path)
    return path


def rows(n: int = 3) -> list[list[Any]]:
    return sample_instances(10, n)


def with_value(feature: int, value: Any, instance: int = 1, n: int = 3) -> list[list[Any]]:
    instances = rows(n)
    instances[instance][feature] = value
    return instances


def refused(model: LoadedModel, instances: list[Any]) -> str:
    """The one-line reason of an InvalidInput that is not a ModelFailed."""
    with pytest.raises(InvalidInput) as info:
        model.predict(instances)
    assert not isinstance(info.value, ModelFailed), info.value
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- the caller's error


def test_null_fed_to_a_model_that_refuses_missing_values_is_invalid_input(
    ridge: LoadedModel,
) -> None:
    message = refused(ridge, with_value(2, None))
    assert message.startswith(
        "sklearn-regressor-seed0.joblib: instance 1 has null values the model does not accept, "
        "first at feature 2 ('bmi'): ValueError: "
    )
    assert "NaN" in message  # the library's own reason follows


def test_nan_from_a_python_caller_is_a_missing_value_too(ridge: LoadedModel) -> None:
    assert "instance 0 has null values" in refused(ridge, with_value(5, math.nan, instance=0))


def test_null_in_an_object_names_the_feature(ridge: LoadedModel) -> None:
    instances: list[Any] = sample_instances(10, 2, as_dicts=True)
    instances[1]["s3"] = None
    message = refused(ridge, instances)
    assert "instance 1 has null values the model does not accept, first at feature 6 ('s3')" in (
        message
    )


def test_a_string_fed_to_a_numeric_model_is_invalid_input(ridge: LoadedModel) -> None:
    message = refused(ridge, with_value(9, "high", instance=2))
    assert "instance 2 has string values the model does not accept, first at feature 9 ('s6')" in (
        message
    )
    assert "high" in message  # sklearn's "could not convert string to float: 'high'"


def test_an_infinity_is_invalid_input(ridge: LoadedModel) -> None:
    # JSON has no Infinity, but 1e999 parses to one.
    message = refused(ridge, with_value(0, math.inf, instance=0))
    assert "instance 0 has infinite values the model does not accept, first at feature 0" in (
        message
    )


def test_the_first_odd_value_is_named(ridge: LoadedModel) -> None:
    instances = with_value(7, None, instance=1)
    instances[2][4] = None
    assert "instance 1 has null values" in refused(ridge, instances)
    # with zeros for the nulls it fails on the string still: that one is named
    instances[2][5] = "x"
    assert "instance 2 has string values the model does not accept, first at feature 5" in (
        refused(ridge, instances)
    )


def test_xgboost_refuses_strings_before_predicting(folder: Path) -> None:
    model = load_model(train_xgboost(folder), Library.XGBOOST)
    assert "expected a number or null, got a string" in refused(model, with_value(3, "x"))


# ---------------------------------------------------------------- still answered


def test_models_that_take_missing_values_answer_null(folder: Path) -> None:
    for model in (
        load_model(train_hist_gradient_boosting(folder), Library.SKLEARN),
        load_model(train_xgboost(folder), Library.XGBOOST),
    ):
        predictions = model.predict(with_value(2, None))
        assert len(predictions) == 3
        assert all(isinstance(p, float) and math.isfinite(p) for p in predictions)


# ---------------------------------------------------------------- the model's error


def test_a_model_that_raises_on_clean_numbers_still_failed(folder: Path) -> None:
    flaky = load_model(train_flaky_regressor(folder, threshold=0.0), Library.SKLEARN)
    with pytest.raises(ModelFailed, match=r"predict failed: ValueError: first feature 0\.5"):
        flaky.predict([[-0.01] * 10, [0.5] * 10])
    # null or a string beside it changes nothing: the model fails without them too
    with pytest.raises(ModelFailed, match=r"predict failed: ValueError: first feature 0\.5"):
        flaky.predict([[-0.01] * 10, [0.5, None, *[0.5] * 8]])
    with pytest.raises(ModelFailed, match="predict failed: "):
        flaky.predict([[0.5] * 10, [-0.01, "x", *[-0.01] * 8]])


def explode(x: Any) -> Any:
    raise RuntimeError("this pipeline is broken")


def train_string_pipeline(folder: Path, broken: bool = False) -> LoadedModel:
    """Ridge after one-hot encoding feature 0, a colour; refuses NaN in feature 1."""
    x = np.array([["red", 1.0], ["blue", 2.0], ["red", 3.0], ["green", 4.0]], dtype=object)
    encode = ColumnTransformer([("colour", OneHotEncoder(), [0])], remainder="passthrough")
    model = Pipeline([("encode", encode), ("ridge", Ridge())]).fit(x, [1.0, 2.0, 3.0, 4.0])
    if broken:  # added once fitted: fitting would call it
        model.steps.insert(1, ("explode", FunctionTransformer(explode).fit(x)))
    path = folder / f"colours{'-broken' if broken else ''}.joblib"
    joblib.dump(model, path)
    return load_model(path, Library.SKLEARN)


def test_a_model_that_takes_strings_is_judged_by_its_other_values(folder: Path) -> None:
    model = train_string_pipeline(folder)
    assert len(model.predict([["red", 2.0], ["blue", 0.5]])) == 2
    message = refused(model, [["red", 2.0], ["blue", None]])
    assert "instance 1 has null values the model does not accept, first at feature 1: " in message
    # an unknown colour is not a string the model refuses: its encoder does, and no zero helps
    with pytest.raises(ModelFailed, match="unknown categories"):
        model.predict([["mauve", 1.0]])


def test_a_broken_model_that_takes_strings_still_failed(folder: Path) -> None:
    with pytest.raises(ModelFailed, match="this pipeline is broken"):
        train_string_pipeline(folder, broken=True).predict([["red", 2.0], ["blue", None]])


def test_the_gateway_counts_the_model_failing_not_the_input_refused(
    ridge: LoadedModel, folder: Path
) -> None:
    flaky = load_model(train_flaky_regressor(folder, threshold=0.0), Library.SKLEARN)

    def call(model: LoadedModel, instances: list[Any]) -> Any:
        variant = Variant(
            name="churn-v1", model="churn", version=1, library=Library.SKLEARN,
            artifact=str(model.path), weight=100,
        )  # fmt: skip
        return predict_timed(LoadedVariant(variant, model), instances, 10_000)

    for instances in (with_value(2, None), with_value(2, "x"), with_value(2, math.inf)):
        outcome = call(ridge, instances)
        assert outcome.bad_input and not outcome.failed
        assert outcome.error.startswith("variant churn-v1 refused the input: ")
    outcome = call(flaky, [[0.5] * 10])
    assert outcome.failed and not outcome.bad_input
    assert outcome.error.startswith("variant churn-v1 failed: ")


def test_onnx_does_not_raise_on_null(folder: Path) -> None:
    # It answers NaN instead: the gateway, which cannot send NaN, decides (see the
    # integration tests).
    model = load_model(train_onnx(folder), Library.ONNX)
    [prediction] = model.predict(with_value(2, None, instance=0, n=1))
    assert math.isnan(prediction)
