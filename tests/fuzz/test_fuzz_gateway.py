"""The local serving gateway (`mmm up`) over real HTTP with hostile requests: bodies that are
huge, chunked, deeply nested, of the wrong types, with NaN, Infinity or odd unicode; endpoint
and region names that climb out of their path; odd headers.

Every request is answered 200 (and then the body was a valid request: a non-empty list of
instances of finite numbers, one prediction each) or 4xx with a one-line JSON error; never
5xx. Bad input is never counted as an error of the variant (its alarms would roll a good
model back), and nothing is written outside the workspace.
"""

from __future__ import annotations

import json
import logging
import math
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import h11
import httpx
import pytest
from hypothesis import strategies as st

from core.adapters.local.serving import LocalServing
from core.gateway.app import create_app
from core.gateway.engine import GatewayOptions
from core.gateway.server import GatewayServer
from tests.fuzz import hostile
from tests.fuzz.support import (
    changed_outside,
    db_rows,
    fast_and_slow,
    logged,
    one_line,
    ran,
    tree,
)
from tests.integration.test_gateway import endpoint, metric, models_dir, variant
from tests.support.models import sample_instances, train_sklearn_regressor

NAME = "churn"
FEATURES = 10
LIMIT = 64 * 1024  # the body limit of this gateway: "huge" is cheap to send


@dataclass
class Gateway:
    root: Path
    home: Path
    url: str
    client: httpx.Client
    names: list[str]  # the model's feature names (it takes objects too)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("fuzz-gateway")
    home = root / "ws"
    path = train_sklearn_regressor(models_dir(home))
    LocalServing(home).apply(endpoint(NAME, [variant(f"{NAME}-v1", path)]))
    app = create_app(home, GatewayOptions(seed=7, max_body_bytes=LIMIT))
    names = list(sample_instances(FEATURES, 1, as_dicts=True)[0])
    with GatewayServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/healthz").status_code == 200
        yield Gateway(root, home, server.url, client, names)


# ---------------------------------------------------------------- strategies

ROW = [float(v) for v in sample_instances(FEATURES, 1)[0]]


def _instances() -> st.SearchStrategy[Any]:
    good_row = st.lists(st.floats(-10, 10), min_size=FEATURES, max_size=FEATURES)
    odd_row = st.lists(
        st.one_of(st.floats(-10, 10), hostile.scalars()), min_size=0, max_size=FEATURES + 2
    )
    named = st.dictionaries(
        st.one_of(st.sampled_from(list(sample_instances(FEATURES, 1, as_dicts=True)[0])),
                  hostile.hostile_text(huge=False)),
        st.one_of(st.floats(-10, 10), hostile.scalars()),
        max_size=FEATURES + 1,
    )  # fmt: skip
    return st.one_of(
        st.lists(good_row, min_size=1, max_size=5),
        st.lists(st.one_of(good_row, odd_row, named), max_size=5),
        hostile.values(),
    )


def _json(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 6))
    if kind <= 2:
        return _json({"instances": draw(_instances())})
    if kind == 3:  # another shape around the instances
        return _json(draw(hostile.values()))
    if kind == 4:  # text that only looks like JSON
        row = ", ".join(
            draw(
                st.sampled_from(
                    [
                        "NaN",
                        "Infinity",
                        "-Infinity",
                        "1e400",
                        "-0",
                        "1" * 5000,
                        "null",
                        '"x"',
                        "true",
                        "0x10",
                        "1.",
                        ".5",
                        "+1",
                        "01",
                    ]
                )
            )
            for _ in range(FEATURES)
        )
        return ('{"instances": [[' + row + "]]}").encode()  # fmt: skip
    if kind == 5:  # deep, big, or repeated keys
        n = draw(st.sampled_from([63, 64, 65, 1000, 100_000]))
        return draw(
            st.sampled_from(
                [
                    b'{"instances": ' + b"[" * n + b"]" * n + b"}",
                    b'{"instances": ' + b'{"a":' * n + b"1" + b"}" * n + b"}",
                    b'{"instances": [[1]], "instances": [[' + b"1," * 9 + b"1]]}",
                    b'{"instances": [' + b"[" + b"1," * (LIMIT // 2) + b"1]]}",
                    b'{"instances": ["' + b"\\ud800" * 10 + b'"]}',
                ]
            )
        )
    return draw(
        st.one_of(
            st.binary(max_size=300),
            hostile.hostile_text().map(lambda t: t.encode("utf-8", "surrogatepass")),
            st.sampled_from([b"", b"\xef\xbb\xbf{}", "{}".encode("utf-16"), b"\x00" * 10]),
        )
    )


NAMES = st.one_of(
    st.just(NAME),
    st.sampled_from(["..", ".", "%2e%2e", "..%2fendpoints", "churn%00", "churn%20", "CHURN",
                     "churn/..", "churn%2f..%2f..", "%c0%ae%c0%ae", "churn?x=1", "churn#x"]),
    hostile.names(hostile.ENDPOINT_RE, surrogates=False),
)  # fmt: skip


@st.composite
def paths(draw: st.DrawFn) -> str:
    name = draw(NAMES)
    quoted = draw(st.booleans())
    # a long name, but a URL httpx still sends (64 KiB at most)
    part = (quote(name, safe="") if quoted else quote(name, safe="/%?#"))[:8000]
    region = quote(draw(st.one_of(st.just("local"), hostile.hostile_text(huge=False))), safe="")
    return draw(
        st.sampled_from(
            [
                f"/endpoints/{part}/invocations",
                f"/endpoints/{part}/invocations",
                f"/regions/{region}/endpoints/{part}/invocations",
                f"/endpoints/{part}",
                f"/{part}",
            ]
        )
    )


HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(
            ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "*/*"]
        ),
        # what a header can carry at all (httpx sends no control character, nothing
        # outside Latin-1, no space at either end)
        "x-request-id": st.one_of(
            st.sampled_from(["abc", "a" * 129, "../../x", "x\ty", "%00", "{}", "-"]),
            st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=200),
        ),
    },
)


# ---------------------------------------------------------------- the property


def _valid_rows(instances: Any, names: list[str]) -> bool:
    """README: `{"instances": [[...], ...]}`: a non-empty list, each a row of the model's
    finite numbers (or an object of them by feature name)."""
    if not isinstance(instances, list) or not instances:
        return False
    for row in instances:
        if isinstance(row, dict):
            if sorted(row) != sorted(names):
                return False
            values = list(row.values())
        elif isinstance(row, list) and len(row) == FEATURES:
            values = row
        else:
            return False
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                return False
    return True


def _errors(g: Gateway) -> float:
    return metric(g.client.get("/metrics").text, "mmm_errors_total")


def check_request(
    g: Gateway, path: str, body: bytes, headers: dict[str, str], chunked: bool, method: str
) -> None:
    outside = tree(g.root, skip=(g.home,))
    endpoints = db_rows(g.home / "serving.db")
    content: bytes | Iterator[bytes] = body
    if chunked:  # no Content-Length: the gateway counts the stream itself
        content = iter([body[i : i + 4096] for i in range(0, len(body), 4096)] or [b""])
    with logged() as records:
        response = g.client.request(method, path, content=content, headers=headers)
    status = response.status_code
    assert status < 500, (status, response.text[:300])
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records][:3]
    if status == 200 and method == "GET":  # the listing (httpx makes "/endpoints/." of it)
        assert "endpoints" in response.json(), response.text[:300]
    elif status == 200:
        answer = response.json()
        request = json.loads(body)  # what was accepted was JSON ...
        assert path == f"/endpoints/{NAME}/invocations" and method == "POST", path
        assert isinstance(request, dict) and _valid_rows(request["instances"], g.names), request
        predictions = answer["predictions"]
        assert len(predictions) == len(request["instances"]), answer
        assert all(isinstance(p, float) and math.isfinite(p) for p in predictions), answer
        assert answer["variant"] == f"{NAME}-v1"
    elif status in (307, 308):  # Starlette: the same path with or without a final "/"
        assert response.headers["location"], response.headers
    else:
        assert 400 <= status < 500, status
        assert response.headers["content-type"].startswith("application/json"), response.headers
        one_line(response.text, "the error")
        error = response.json()
        assert list(error) == ["error"] and isinstance(error["error"], str), error
    assert _errors(g) == 0, "bad input counted against the variant"
    assert db_rows(g.home / "serving.db") == endpoints, "a request changed the endpoints"
    assert changed_outside(outside, tree(g.root, skip=(g.home,))) == []
    ran("gateway request", status == 200)


def request(
    gateway: Gateway, path: str, body: bytes, headers: dict[str, str], chunked: bool, method: str
) -> None:
    check_request(gateway, path, body, headers, chunked, method)


test_request, test_request_slow = fast_and_slow(
    request,
    60,
    800,
    path=paths(),
    body=bodies(),
    headers=HEADERS,
    chunked=st.booleans(),
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
)


# ---------------------------------------------------------------- what httpx will not send


def raw_request(url: str, head: bytes, body: bytes) -> tuple[int, bytes]:
    """Send bytes httpx would not (a Content-Length that lies); the status line of the
    answer, or 0 when the server closed without one (it may, on a request it cannot
    read: the client is told by the connection, not by a status)."""
    host, port = url.removeprefix("http://").split(":")
    data = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(head + b"\r\n\r\n" + body)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                data += chunk
        except OSError:  # reset by the server: it stopped reading
            pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data


def _uvicorn_answered(record: logging.LogRecord, records: list[logging.LogRecord]) -> bool:
    """A request whose HTTP uvicorn itself refused ("Invalid HTTP request received": both
    Transfer-Encoding and a Content-Length, a chunk that is not one) after the gateway had
    begun with its headers: uvicorn answers 400 but leaves the exchange open, so the
    gateway's own answer meets h11's "MUST_CLOSE" and uvicorn logs it. uvicorn's to mend."""
    exc = record.exc_info[1] if record.exc_info else None
    return (
        isinstance(exc, h11.LocalProtocolError)
        and "MUST_CLOSE" in str(exc)
        and any(r.getMessage() == "Invalid HTTP request received." for r in records)
    )


def check_raw(g: Gateway, length: str, body: bytes, chunked: bool) -> None:
    outside = tree(g.root, skip=(g.home,))
    head = f"POST /endpoints/{NAME}/invocations HTTP/1.1\r\nHost: x\r\nConnection: close"
    head += "\r\nContent-Type: application/json"
    head += "\r\nTransfer-Encoding: chunked" if chunked else ""
    raw = head.encode() + b"\r\nContent-Length: " + length.encode()
    with logged() as records:
        status, data = raw_request(g.url, raw, body)
        _errors(g)  # a request after it: whatever it left the server with is done by then
    # 0: the server closed a request it could not read; never a 5xx
    assert status == 0 or 200 <= status < 500, data[:300]
    tracebacks = [r for r in records if r.exc_info and not _uvicorn_answered(r, records)]
    assert not tracebacks, [r.getMessage() for r in tracebacks][:3]
    assert _errors(g) == 0
    assert changed_outside(outside, tree(g.root, skip=(g.home,))) == []
    ran("gateway raw request (Content-Length)", status == 200)


def content_length(gateway: Gateway, length: str, body: bytes, chunked: bool) -> None:
    check_raw(gateway, length, body, chunked)


test_content_length, test_content_length_slow = fast_and_slow(
    content_length,
    15,
    150,
    length=st.one_of(
        st.sampled_from(["abc", "-1", "1e9", "99999999999999999999", "\xb2", "١٢", " 5", "0x10"]),
        st.integers(0, 10 * LIMIT).map(str),
    ),
    body=bodies(),
    chunked=st.booleans(),
)


def test_a_valid_request_is_answered(gateway: Gateway) -> None:
    body = json.dumps({"instances": [ROW, dict(zip(gateway.names, ROW, strict=True))]})
    check_request(gateway, f"/endpoints/{NAME}/invocations", body.encode(), {}, False, "POST")
    check_request(gateway, f"/endpoints/{NAME}/invocations", body.encode(), {}, True, "POST")
