"""Bad client input over real HTTP: a clean 4xx with a one-line reason, never counted against
the variant (its alarms would roll a good model back).

The gateway, helpers and models are those of `test_gateway.py`.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from core.adapters.local.serving import LocalServing
from core.domain import Library
from core.gateway.aggregates import METRICS_DB, Window, read_window
from core.gateway.engine import MAX_JSON_DEPTH, parse_instances
from core.ports import InvalidInput
from tests.integration.test_gateway import (
    REGION,
    endpoint,
    metric,
    models_dir,
    post,
    serving,
    variant,
)
from tests.support.models import (
    sample_instances,
    train_flaky_regressor,
    train_onnx,
    train_sklearn_regressor,
)

PRODUCTION = {"role": "production"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "ws"


def post_raw(
    client: httpx.Client, name: str, content: bytes | str | Iterator[bytes]
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    return client.post(f"/endpoints/{name}/invocations", content=content, headers=headers)


def error_of(response: httpx.Response, status: int) -> str:
    """The one-line reason of an error answer with that status."""
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    assert "\n" not in response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    message: str = body["error"]
    return message


def row_json(values: list[str]) -> str:
    return "[" + ", ".join(values) + "]"


def a_row() -> list[str]:
    return [repr(v) for v in sample_instances(10, 1)[0]]


def aggregates(home: Path, name: str, variant_name: str) -> Window:
    """What the alarms read: the variant's production traffic in metrics.db (the gateway
    flushes it when it stops)."""
    db = sqlite3.connect(home / METRICS_DB)
    try:
        return read_window(db, REGION, name, variant_name, "production", 0)
    finally:
        db.close()


def ridge_endpoint(home: Path) -> Path:
    """`churn` served by churn-v1, an sklearn Ridge, which refuses NaN and strings."""
    path = train_sklearn_regressor(models_dir(home))
    LocalServing(home).apply(endpoint("churn", [variant("churn-v1", path)]))
    return path


# ---------------------------------------------------------------- refused while parsing


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_numbers_are_refused_before_any_model(home: Path, constant: str) -> None:
    ridge_endpoint(home)
    values = a_row()
    values[3] = constant
    with serving(home) as (client, _):
        response = post_raw(client, "churn", '{"instances": [' + row_json(values) + "]}")
        assert error_of(response, 400) == (
            f"body is not JSON: {constant} is not a JSON value (null is a missing one)"
        )
        assert post(client, "churn", sample_instances(10, 1)).status_code == 200
        text = client.get("/metrics").text
    assert metric(text, "mmm_rejected_total", reason="bad_request") == 1
    assert metric(text, "mmm_requests_total", variant="churn-v1", **PRODUCTION) == 1
    assert metric(text, "mmm_errors_total") == 0
    assert aggregates(home, "churn", "churn-v1").errors == 0


def test_json_nested_too_deep_is_a_clean_400_and_the_connection_lives_on(home: Path) -> None:
    ridge_endpoint(home)
    deepest = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    # a few levels over the limit: json.loads would take it, the gateway does not
    over = '{"instances": [' + "[" * MAX_JSON_DEPTH + "1" + "]" * MAX_JSON_DEPTH + "]}"
    with serving(home) as (client, _):
        for body in (deepest, over, deepest.replace(b"[", b'{"a":').replace(b"]", b"}")):
            response = post_raw(client, "churn", body)
            assert error_of(response, 400) == f"body nests JSON deeper than {MAX_JSON_DEPTH} levels"
            # the same client, and most likely the same connection, is answered next
            assert post(client, "churn", sample_instances(10, 1)).status_code == 200
        text = client.get("/metrics").text
    assert metric(text, "mmm_rejected_total", reason="bad_request") == 3
    assert metric(text, "mmm_errors_total") == 0
    assert aggregates(home, "churn", "churn-v1").errors == 0


def test_the_depth_limit_counts_json_nesting_not_brackets_in_strings() -> None:
    inside = "[" * (MAX_JSON_DEPTH - 1) + "1" + "]" * (MAX_JSON_DEPTH - 1)
    assert parse_instances(('{"instances": ' + inside + "}").encode()) == json.loads(inside)
    many = json.dumps({"instances": [["[" * 500, "]" * 500, "{" * 500]]}).encode()
    assert parse_instances(many) == [["[" * 500, "]" * 500, "{" * 500]]
    batch = json.dumps({"instances": sample_instances(10, 200)}).encode()
    assert len(parse_instances(batch)) == 200
    with pytest.raises(InvalidInput, match="deeper than"):
        parse_instances(('{"instances": [' + inside + "]}").encode())
    # found by fuzzing: brackets only inside one string left nothing to count (a 500)
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        parse_instances(json.dumps("[" * (MAX_JSON_DEPTH + 1)).encode())


# ---------------------------------------------------------------- refused by the model


def test_null_strings_and_infinities_a_model_refuses_are_the_callers_error(home: Path) -> None:
    ridge_endpoint(home)
    good = sample_instances(10, 2)
    null_row = [*good[0][:2], None, *good[0][3:]]
    named: dict[str, Any] = sample_instances(10, 1, as_dicts=True)[0]
    named["s3"] = None
    string_row = [*good[1][:9], "high"]
    with serving(home) as (client, _):
        cases = [
            (post(client, "churn", [good[0], null_row]), "instance 1 has null values", "bmi"),
            (post(client, "churn", [named]), "instance 0 has null values", "s3"),
            (post(client, "churn", [string_row]), "instance 0 has string values", "s6"),
        ]
        values = a_row()
        values[0] = "1e999"  # valid JSON that Python reads as an infinity
        huge = post_raw(client, "churn", '{"instances": [' + row_json(values) + "]}")
        cases.append((huge, "instance 0 has infinite values", "age"))
        for response, what, feature in cases:
            message = error_of(response, 400)
            assert message.startswith("variant churn-v1 refused the input: ")
            assert f"{what} the model does not accept, first at feature" in message
            assert f"('{feature}'): ValueError: " in message  # and sklearn's own reason
            assert response.headers["x-mmm-variant"] == "churn-v1"
        assert post(client, "churn", good).status_code == 200
        text = client.get("/metrics").text

    labels = {"endpoint": "churn", "variant": "churn-v1", **PRODUCTION}
    assert metric(text, "mmm_requests_total", **labels) == 5
    assert metric(text, "mmm_errors_total", **labels) == 0
    assert metric(text, "mmm_rejected_total", reason="bad_input") == 4
    window = aggregates(home, "churn", "churn-v1")
    assert (window.requests, window.errors) == (5, 0)


def test_a_model_answering_nan_for_null_is_the_callers_error_too(home: Path) -> None:
    # ONNX does not raise on NaN; a linear graph answers NaN, which JSON cannot carry.
    onnx = variant("onnx-v1", train_onnx(models_dir(home))).model_copy(
        update={"library": Library.ONNX}
    )
    LocalServing(home).apply(endpoint("onnx", [onnx]))
    row: list[Any] = sample_instances(10, 1)[0]
    with serving(home) as (client, _):
        assert post(client, "onnx", [row]).status_code == 200
        response = post(client, "onnx", [row, [*row[:4], None, *row[5:]]])
        assert error_of(response, 400) == (
            "variant onnx-v1 refused the input: instance 1 has null values the model does not "
            "accept: it answered NaN"
        )
        text = client.get("/metrics").text
    assert metric(text, "mmm_errors_total", variant="onnx-v1") == 0
    assert metric(text, "mmm_rejected_total", reason="bad_input") == 1


def test_a_model_that_takes_missing_values_answers_null(home: Path) -> None:
    x = sample_instances(10, 200)
    model = HistGradientBoostingRegressor(max_iter=10).fit(x, [r[0] + r[2] for r in x])
    path = models_dir(home) / "hgb-v1.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    LocalServing(home).apply(endpoint("hgb", [variant("hgb-v1", path)]))
    with serving(home) as (client, _):
        response = post_raw(client, "hgb", '{"instances": [[' + ", ".join(["null"] * 10) + "]]}")
        assert response.status_code == 200, response.text
        [prediction] = response.json()["predictions"]
        assert isinstance(prediction, float) and math.isfinite(prediction)


def test_a_model_that_raises_on_input_that_fits_still_counts_against_it(home: Path) -> None:
    flaky = train_flaky_regressor(models_dir(home), threshold=0.0)
    LocalServing(home).apply(endpoint("flaky", [variant("flaky-v1", flaky)]))
    with serving(home) as (client, _):
        response = post(client, "flaky", [[0.5] * 10])
        assert "exceeds the threshold" in error_of(response, 502)
        text = client.get("/metrics").text
    assert metric(text, "mmm_errors_total", variant="flaky-v1") == 1
    assert aggregates(home, "flaky", "flaky-v1").errors == 1


# ---------------------------------------------------------------- size


def chunks(total: int, size: int = 1024) -> Iterator[bytes]:
    """A valid body of at least `total` bytes, in pieces: httpx sends it chunked."""
    row = (row_json(a_row()) + ", ").encode()
    yield b'{"instances": ['
    sent = 0
    while sent < total:
        piece = row * max(1, size // len(row))
        sent += len(piece)
        yield piece
    yield row_json(a_row()).encode() + b"]}"


def test_a_chunked_body_over_the_limit_is_cut_off_with_413(home: Path) -> None:
    ridge_endpoint(home)
    limit = 4096
    with serving(home, max_body_bytes=limit) as (client, _):
        response = post_raw(client, "churn", chunks(64 * 1024))
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.request.headers
        assert error_of(response, 413) == f"body over {limit} bytes"

        under = post_raw(client, "churn", chunks(1024, size=256))
        assert under.request.headers["transfer-encoding"] == "chunked"
        assert under.status_code == 200, under.text

        declared = post_raw(client, "churn", b" " * (limit + 1))
        assert error_of(declared, 413) == f"body over {limit} bytes"
        text = client.get("/metrics").text
    assert metric(text, "mmm_rejected_total", reason="too_large") == 2
    assert metric(text, "mmm_requests_total", variant="churn-v1") == 1
    assert metric(text, "mmm_errors_total") == 0


def test_a_50_mb_chunked_body_is_refused_under_the_default_limit(home: Path) -> None:
    ridge_endpoint(home)
    with serving(home) as (client, gateway):
        response = post_raw(client, "churn", chunks(50 * 1024 * 1024, size=1024 * 1024))
        assert error_of(response, 413) == f"body over {gateway.options.max_body_bytes} bytes"
        assert post(client, "churn", sample_instances(10, 1)).status_code == 200
