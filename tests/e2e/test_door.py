"""Bad names and files through the `mmm` command: one line, exit 2, nothing recorded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.e2e.conftest import Workspace
from tests.support.models import train_sklearn_regressor


def test_names_and_files_are_refused_at_the_door(ws: Workspace, tmp_path: Path) -> None:
    ws.register()
    artifact = str(train_sklearn_regressor(ws.models, seed=0))

    def file(name: str, text: str | bytes) -> str:
        f = tmp_path / name
        f.write_bytes(text if isinstance(text, bytes) else text.encode())
        return str(f)

    register = ("register", "--artifact", artifact, "--library", "sklearn")
    deploy = ("deploy", "churn", "1")
    cases = [
        (("register", "café", *register[1:]), "model 'café'"),
        (("register", "名字", *register[1:]), "model '名字'"),
        (("register", "m" * 129, *register[1:]), "at most 48 characters"),
        (("register", "m" * 10_000, *register[1:]), "at most 48 characters"),
        ((*deploy, "--endpoint", ""), "endpoint ''"),
        ((*deploy, "-f", file("inf.yaml", "endpoint: dia\nalarms: {p99_latency_ms: .inf}\n")),
         "alarms.p99_latency_ms: Input should be a finite number"),
        ((*deploy, "-f", file("nan.yaml", "endpoint: dia\ntolerance: .nan\n")), "tolerance"),
        ((*deploy, "-f", file("dup.yaml", "endpoint: a\nendpoint: b\n")), "given twice"),
        ((*deploy, "-f", file("bin.yaml", bytes(range(256)))), "not UTF-8 text"),
        ((*deploy, "-f", file("u16.yaml", "endpoint: a\n".encode("utf-16"))), "not UTF-8 text"),
        ((*deploy, "-f", file("deep.yaml", "x: " + "[" * 5000 + "]" * 5000)), "nested"),
        ((*deploy, "-f", file("reg.yaml", "endpoint: a\nregions: ['../../x']\n")), "../../x"),
        ((*deploy, "-f", file("big.yaml", "endpoint: a\nalarms: {min_requests: 1.0e+26}\n")),
         "alarms.min_requests"),
        ((*deploy, "-f", "/dev/urandom"), "not a regular file"),
        (("--as", "bob\nmallory", *deploy, "--endpoint", "dia"), "user name"),
        ((*register[:1], "churn", *register[1:], "--golden",
          file("narrow.jsonl", '{"input": [1, 2], "output": 3}\n')),
         "narrow.jsonl line 1 does not fit the model"),
        # found by fuzzing: a name too long for a URL escaped as httpx's InvalidURL
        (("invoke", "a" * 65_496, "--data", "[1]", "--url", "http://127.0.0.1:9"),
         "at most 63 characters"),
        (("invoke", "dia", "--region", "../x", "--data", "[1]"), "region '../x'"),
        (("register", "churn", "--artifact", "a" * 1000, "--library", "sklearn"),
         "File name too long"),
        ((*register[:1], "churn", *register[1:], "--golden", artifact + "/x"), "/x: no such file"),
        (("--home", "h" * 1000, "status"), "File name too long"),
    ]  # fmt: skip
    before = ws.snapshot()
    for args, message in cases:
        res = ws.run(*args, timeout=60)
        assert res.code == 2, (args[:3], res.err)
        assert message in res.err, (args[:3], res.err)
        assert res.err.count("\n") == 1 and "Traceback" not in res.err
    assert ws.snapshot() == before
    assert not (ws.home / "registry" / "files" / "café").exists()


@pytest.mark.slow  # the same story runs in process in tests/integration/test_defects.py
def test_a_record_saved_unreadable_by_an_older_release_does_not_stop_the_others(
    ws: Workspace,
) -> None:
    ws.register()
    bad = ws.ok("deploy", "churn", "1", "--endpoint", "dia", "--detach", "--json").json()["id"]
    good = ws.ok("deploy", "churn", "1", "--endpoint", "other", "--detach", "--json").json()["id"]
    db = sqlite3.connect(ws.home / "state.db")
    body = json.loads(db.execute("SELECT body FROM deployments WHERE id = ?", [bad]).fetchone()[0])
    body["spec"]["alarms"]["p99_latency_ms"] = None  # how `.inf` was once saved
    db.execute("UPDATE deployments SET body = ? WHERE id = ?", [json.dumps(body), bad])
    db.commit()
    db.close()

    listed = {d["id"]: d for d in ws.ok("status", "--json").json()}
    assert set(listed) == {bad, good} and "cannot be read" in listed[bad]["error"]
    assert "unreadable" in ws.ok("status").out
    ws.ok("worker", "--once")
    assert ws.ok("status", good, "--json").json()["state"] == "succeeded"
    assert ws.ok("status", bad, "--json").json()["state"] == "queued"
    ws.ok("abort", bad)
    assert ws.ok("status", bad, "--json").json()["state"] == "aborted"
    assert ws.ok("deploy", "churn", "1", "--endpoint", "dia", "--json").json()["state"] == (
        "succeeded"
    )


@pytest.mark.slow
def test_status_wait_times_out_with_a_non_zero_exit(ws: Workspace, tmp_path: Path) -> None:
    ws.register()
    f = tmp_path / "bake.yaml"
    f.write_text("endpoint: dia\nstrategy: {kind: blue-green, steps: [100], bake_s: 3600}\n")
    dep = ws.ok("deploy", "churn", "1", "-f", str(f), "--detach", "--json").json()["id"]
    res = ws.run("status", dep, "--wait", "--timeout", "5")
    assert res.code == 1 and f"timed out after 5s: {dep} is still" in res.err
    ws.ok("abort", dep)
