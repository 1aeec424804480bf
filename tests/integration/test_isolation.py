"""Model files and the application's tests run where mmm's credentials are not.

A model that records its process's environment on load and on predict
(`tests.support.exfil`), and a consuming repository whose `tests/conftest.py`
does the same, run through every path that runs them: the artifact check
(register, --dry-run, the worker's validate), the shadow replay, the gateway
of `mmm up`, and the golden-data checks. Variables planted in this process
must be absent there, and the scratch they used must be gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.adapters.local.codehost import LocalGitCodeHost
from core.adapters.local.registry import LocalRegistry
from core.adapters.local.serving import LocalServing
from core.checks import check_artifact, check_files
from core.domain import Library
from core.gateway.process import GatewayProcess
from core.isolation import child_env, process_scratch, scratch_owner, sweep_scratch
from core.ports import EndpointConfig, InvalidInput, PortError, ShadowConfig, Variant
from tests.support.exfil import read_records, train_exfil_regressor
from tests.support.models import (
    sample_instances,
    train_flaky_regressor,
    train_sklearn_regressor,
    write_broken_artifact,
    write_golden,
)
from tests.support.processes import gone

PLANTED = {
    "MMM_TEST_SECRET_TOKEN": "s3cr3t",
    "CANARY_VALUE": "tweet-tweet",  # harmless-looking, but not on the allowlist
    "AWS_SECRET_ACCESS_KEY": "aws-s3cr3t",
    "SLACK_BOT_TOKEN": "xoxb-s3cr3t",
    "GITHUB_TOKEN": "ghp-s3cr3t",
    "OMP_API_KEY": "omp-s3cr3t",  # an allowed prefix does not admit a secret-looking name
}


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    return PLANTED


def assert_clean(env: dict[str, str]) -> None:
    leaked = sorted(k for k in PLANTED if k in env)
    assert leaked == []
    assert not any(v in env.values() for v in PLANTED.values())


def exfil_golden(folder: Path, n: int = 5) -> Path:
    """Golden data for the exfiltrating model; outputs are not judged by the artifact check."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "golden.jsonl"
    rows = sample_instances(10, n)
    path.write_text("".join(json.dumps({"input": r, "output": 0.0}) + "\n" for r in rows))
    return path


def file_variant(name: str, path: Path, weight: float = 100) -> Variant:
    model, version = name.rsplit("-v", 1)
    return Variant(
        name=name,
        model=model,
        version=int(version),
        library=Library.SKLEARN,
        artifact=path.as_uri(),
        weight=weight,
    )


# ---------------------------------------------------------------- the environment


def test_child_env_keeps_what_children_need_and_nothing_secret(planted: dict[str, str]) -> None:
    env = child_env({"EXTRA": "1"})
    assert_clean(env)
    assert env["PATH"] == os.environ["PATH"] and env["EXTRA"] == "1"
    assert str(Path(__file__).resolve().parents[2]) in env["PYTHONPATH"].split(os.pathsep)


# ---------------------------------------------------------------- scratch


def test_sweep_removes_the_scratch_of_processes_that_are_gone_and_only_that(
    tmp_path: Path,
) -> None:
    tmp_path = tmp_path.resolve()
    home = tmp_path / "ws"
    mine = process_scratch(home)
    owner = scratch_owner(mine)
    assert owner is not None and owner[1] == os.getpid()
    host = owner[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    root = home / "tmp"
    kept = [mine, root / f"{host}-{os.getppid()}", root / f"elsewhere.1-{int(dead.stdout)}"]
    gone = [root / f"{host}-{int(dead.stdout)}", root / "stage-abc", root / "report-12345678"]
    for folder in [*kept, *gone]:
        (folder / "inner").mkdir(parents=True, exist_ok=True)
    (root / "check-x.tmp").write_text("loose file of an older version")
    gone.append(root / "check-x.tmp")
    # a folder named after this process that it did not make: a dead namesake's
    other_home = tmp_path / "other"
    (other_home / "tmp" / mine.name / "old").mkdir(parents=True)

    assert sorted(sweep_scratch(home)) == sorted(gone)
    assert sorted(root.iterdir()) == sorted(kept)
    assert sweep_scratch(home) == []  # idempotent
    assert sweep_scratch(other_home) == [other_home / "tmp" / mine.name]
    assert sweep_scratch(tmp_path / "no-workspace") == []


# ---------------------------------------------------------------- model files


def test_the_artifact_check_runs_the_model_in_a_child_without_credentials(
    tmp_path: Path, planted: dict[str, str]
) -> None:
    record = tmp_path / "record.jsonl"
    artifact = train_exfil_regressor(tmp_path / "models", record)
    golden = exfil_golden(tmp_path / "models")
    scratch = tmp_path / "scratch"

    assert check_artifact(artifact, Library.SKLEARN, golden, scratch) == 5

    records = read_records(record)
    assert {r["event"] for r in records} == {"load", "predict"}
    assert all(r["pid"] != os.getpid() for r in records)  # never in this process
    for r in records:
        assert_clean(r["env"])
    assert list(scratch.iterdir()) == []  # the child's folder is gone


def test_the_check_of_a_registered_version_runs_in_a_child_too(
    tmp_path: Path, planted: dict[str, str]
) -> None:
    """`check_files`: what `deploy` and `--dry-run` run; the worker's validate runs the same."""
    record = tmp_path / "record.jsonl"
    artifact = train_exfil_regressor(tmp_path / "models", record)
    registry = LocalRegistry(tmp_path / "registry")
    mv = registry.register(
        "spy", artifact, Library.SKLEARN, exfil_golden(tmp_path / "models"), None, "alice"
    )
    assert check_files(registry, mv, tmp_path / "scratch") == 5
    records = read_records(record)
    assert records and all(r["pid"] != os.getpid() for r in records)
    for r in records:
        assert_clean(r["env"])


def test_replay_runs_both_models_in_a_child_without_credentials(
    tmp_path: Path, planted: dict[str, str]
) -> None:
    home = tmp_path / "ws"
    record = tmp_path / "record.jsonl"
    spy = train_exfil_regressor(tmp_path / "models", record)
    plain = train_sklearn_regressor(tmp_path / "models")
    serving = LocalServing(home)
    serving.apply(
        EndpointConfig(
            name="churn",
            region="local",
            variants=[file_variant("churn-v1", plain)],
            shadow=ShadowConfig(variant=file_variant("churn-v2", spy, 0)),
        )
    )
    inputs = sample_instances(10, 6)
    assert serving.replay("churn", "local", [(f"r{i}", x) for i, x in enumerate(inputs)]) == 6

    records = read_records(record)
    assert [r["event"] for r in records].count("predict") == 6
    assert all(r["pid"] != os.getpid() for r in records)
    for r in records:
        assert_clean(r["env"])
    # captured exactly as before: one pair per input, both answers there
    pairs = list(serving.captured("churn", "local", "churn-v2"))
    assert [p.input for p in pairs] == inputs
    assert all(p.production is not None and p.shadow is not None for p in pairs)
    # the child worked in this process's scratch folder, left empty, which a sweep keeps
    assert sweep_scratch(home) == []
    (mine,) = (home / "tmp").iterdir()
    assert mine.name.endswith(f"-{os.getpid()}") and list(mine.iterdir()) == []


def test_replay_reports_a_variant_that_cannot_load(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    plain = train_sklearn_regressor(tmp_path / "models")
    serving = LocalServing(home)
    serving.apply(
        EndpointConfig(
            name="churn",
            region="local",
            variants=[file_variant("churn-v1", tmp_path / "missing.joblib")],
            shadow=ShadowConfig(variant=file_variant("churn-v2", plain, 0)),
        )
    )
    with pytest.raises(PortError, match=r"churn-v1: cannot load .*missing\.joblib"):
        serving.replay("churn", "local", [("r0", x) for x in sample_instances(10, 1)])


def test_the_gateway_child_serves_without_credentials(
    tmp_path: Path, planted: dict[str, str]
) -> None:
    home = tmp_path / "ws"
    record = tmp_path / "record.jsonl"
    spy = train_exfil_regressor(tmp_path / "models", record)
    LocalServing(home).apply(
        EndpointConfig(name="spy", region="local", variants=[file_variant("spy-v1", spy)])
    )
    gateway = GatewayProcess(home, 0).start()
    try:
        assert gateway.url.startswith("http://127.0.0.1:") and not gateway.url.endswith(":0")
        answer = httpx.post(
            f"{gateway.url}/endpoints/spy/invocations",
            json={"instances": sample_instances(10, 2)},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    finally:
        assert gateway.stop() == 0  # SIGTERM: a clean drain
    records = read_records(record)
    assert {r["event"] for r in records} == {"load", "predict"}
    assert {r["pid"] for r in records} == {gateway.pid}
    for r in records:
        assert_clean(r["env"])


def test_the_gateway_child_dies_with_a_killed_parent(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; "
        "from core.gateway.process import GatewayProcess; "
        "g = GatewayProcess(Path(sys.argv[1]), 0).start(); print(g.pid, flush=True); "
        "time.sleep(120)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "ws")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert parent.stdout is not None
        gateway = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while not gone(gateway):
        if time.monotonic() > deadline:
            os.kill(gateway, signal.SIGKILL)
            pytest.fail("the gateway outlived its killed parent")
        time.sleep(0.05)


def test_a_gateway_that_cannot_start_says_why_in_one_line(tmp_path: Path) -> None:
    first = GatewayProcess(tmp_path / "ws", 0).start()
    try:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(PortError, match=rf"^127\.0\.0\.1:{port}: cannot listen"):
            GatewayProcess(tmp_path / "ws", port).start()
    finally:
        first.stop()


# ---------------------------------------------------------------- golden data that does not fit


def test_golden_rows_that_do_not_fit_the_model_are_refused_naming_the_line(
    tmp_path: Path,
) -> None:
    artifact = train_sklearn_regressor(tmp_path / "models")
    good = write_golden(artifact, Library.SKLEARN, tmp_path / "models", n=3)
    lines = good.read_text().splitlines()
    scratch = tmp_path / "scratch"

    narrow = tmp_path / "narrow" / "golden.jsonl"
    narrow.parent.mkdir()
    narrow.write_text("\n".join([lines[0], json.dumps({"input": [1, 2, 3], "output": 1.0})]))
    with pytest.raises(InvalidInput) as info:
        check_artifact(artifact, Library.SKLEARN, narrow, scratch)
    message = str(info.value)
    assert message.startswith("golden.jsonl line 2 does not fit the model: ")
    assert "3 features" in message and "\n" not in message

    unknown = tmp_path / "unknown" / "golden.jsonl"
    unknown.parent.mkdir()
    unknown.write_text("\n".join([lines[0], "", json.dumps({"input": {"nope": 1}, "output": 1})]))
    with pytest.raises(
        InvalidInput, match=r"^golden\.jsonl line 3 does not fit the model: .*missing feature"
    ):
        check_artifact(artifact, Library.SKLEARN, unknown, scratch)

    # outputs are for the golden check at deploy time: a mismatch is accepted here
    shifted = tmp_path / "shifted" / "golden.jsonl"
    shifted.parent.mkdir()
    shifted.write_text("".join(json.dumps({**json.loads(x), "output": 1e6}) + "\n" for x in lines))
    assert check_artifact(artifact, Library.SKLEARN, shifted, scratch) == 3
    assert check_artifact(artifact, Library.SKLEARN, None, scratch) == 0
    assert list(scratch.iterdir()) == []


def test_a_model_that_raises_on_a_fitting_row_is_not_refused_here(tmp_path: Path) -> None:
    flaky = train_flaky_regressor(tmp_path / "models", threshold=0.0)
    golden = tmp_path / "golden.jsonl"
    rows = sample_instances(10, 4)  # some have a positive first feature: the model raises
    assert any(r[0] > 0 for r in rows)
    golden.write_text("".join(json.dumps({"input": r, "output": 0.0}) + "\n" for r in rows))
    assert check_artifact(flaky, Library.SKLEARN, golden, tmp_path / "scratch") == 4


def test_an_artifact_that_is_not_a_model_is_refused_in_one_line(tmp_path: Path) -> None:
    broken = write_broken_artifact(tmp_path / "models")
    with pytest.raises(InvalidInput, match=r"not a loadable sklearn model") as info:
        check_artifact(broken, Library.SKLEARN, None, tmp_path / "scratch")
    assert "\n" not in str(info.value)
    with pytest.raises(InvalidInput, match="no such file"):
        check_artifact(tmp_path / "nope.joblib", Library.SKLEARN, None, tmp_path / "scratch")


# ---------------------------------------------------------------- the application's tests

SPY_CONFTEST = """\
import json, os
from pathlib import Path

Path({out!r}).write_text(json.dumps({{"cwd": os.getcwd(), "env": dict(os.environ)}}))
"""


def test_the_application_tests_run_without_credentials_in_the_workspace_scratch(
    tmp_path: Path, planted: dict[str, str]
) -> None:
    out = tmp_path / "seen.json"
    scratch = tmp_path / "ws" / "tmp" / "me"
    host = LocalGitCodeHost(tmp_path / "app", check_timeout_s=120, scratch=lambda: scratch)
    files = {
        "tests/conftest.py": SPY_CONFTEST.format(out=str(out)),
        "tests/mmm/test_ok.py": "def test_ok():\n    assert True\n",
    }
    result = host.run_checks(host.open_change("dep-1", files, [], "t", "alice"))
    assert result.passed, result.output

    seen = json.loads(out.read_text())
    assert_clean(seen["env"])
    assert Path(seen["cwd"]).is_relative_to(scratch)  # the checkout is in the workspace
    assert list(scratch.iterdir()) == []  # and is gone afterwards
