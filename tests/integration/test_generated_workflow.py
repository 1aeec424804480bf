"""The golden tests and the workflow mmm writes into a repository on GitHub: self-contained
(the model's library and the artifact store's client, nothing of mmm), and run the way the
workflow runs them, in a clean virtual environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.codegen import CodegenContext, render_files
from core.codegen.standalone import (
    REQUIRES,
    WORKFLOW_PATH,
    requirements,
    self_contained,
    workflow,
    workflow_files,
)
from core.domain import Library
from core.spec import DeploymentSpec, SpecError, parse_settings
from tests.support.container_models import container_golden
from tests.support.models import train_sklearn_regressor, write_golden

ROLE = "arn:aws:iam::123456789012:role/golden-tests"
# The local package index of this machine (pip reads it offline); elsewhere the slow test
# is skipped rather than reaching out to the internet.
LOCAL_INDEX = os.environ.get("MMM_TEST_PIP_INDEX", "file:///opt/pypi/simple")


def _files(
    tmp_path: Path, artifact_uri: str | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """The files of a deployment as a GitHub repository gets them, and as the local one does."""
    artifact = train_sklearn_regressor(tmp_path / "model", seed=0)
    golden = write_golden(artifact, Library.SKLEARN, tmp_path / "model")
    ctx = CodegenContext(
        endpoint="churn",
        model="churn_model",
        version="1.0.0",
        library=Library.SKLEARN,
        artifact_uri=artifact_uri or str(artifact),
        golden_cases_jsonl=golden.read_text(),
        spec=DeploymentSpec(endpoint="churn"),
        deployment_id="dep-1",
        generated_at="2026-01-01T00:00:00+00:00",
    )
    local = render_files(ctx)
    return self_contained(local), local


def _repository(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    for path, text in {**files, WORKFLOW_PATH: workflow()}.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    return repo


def test_the_golden_test_needs_nothing_of_mmm(tmp_path: Path) -> None:
    files, local = _files(tmp_path)
    test = files["tests/mmm/test_churn_golden.py"]
    imported = set(re.findall(r"^\s*(?:from|import) (\w+)", test, flags=re.M))
    assert imported <= {
        "__future__",
        "json",
        "math",
        "numbers",
        "os",
        "tempfile",
        "pathlib",
        "typing",
        "urllib",
        "numpy",
        "boto3",
        "onnxruntime",
        "xgboost",
        "joblib",
    }
    assert f"{REQUIRES}joblib scikit-learn\n" in test
    assert "s3://" not in test
    # everything else is as the local code host writes it
    assert set(files) == set(local)
    assert {p for p in files if files[p] != local[p]} == {"tests/mmm/test_churn_golden.py"}


def test_an_artifact_on_s3_is_read_with_boto3(tmp_path: Path) -> None:
    files, _ = _files(tmp_path, "s3://mmm-production-us-east-1/churn_model/1.0.0/model.joblib")
    assert f"{REQUIRES}boto3 joblib scikit-learn\n" in files["tests/mmm/test_churn_golden.py"]
    assert requirements("xgboost", "m.json") == ["xgboost"]
    assert requirements("xgboost", "m.joblib") == ["joblib", "scikit-learn", "xgboost"]
    assert requirements("onnx", "s3://b/m.onnx") == ["boto3", "numpy", "onnxruntime"]


def test_the_workflow_assumes_the_role_named_in_settings() -> None:
    plain = yaml.safe_load(workflow())
    steps = plain["jobs"]["mmm-golden"]["steps"]
    assert [s.get("uses", "").split("@")[0] for s in steps][:2] == [
        "actions/checkout",
        "actions/setup-python",
    ]
    assert not any("configure-aws-credentials" in s.get("uses", "") for s in steps)
    assert plain["permissions"] == {"contents": "read"}
    with_role = yaml.safe_load(workflow("main", ROLE, "eu-west-1"))
    aws = next(s for s in with_role["jobs"]["mmm-golden"]["steps"] if "aws" in s.get("uses", ""))
    assert aws["with"] == {"role-to-assume": ROLE, "aws-region": "eu-west-1"}
    assert with_role["permissions"] == {"contents": "read", "id-token": "write"}
    # written on first use only: one already on the base branch is the owners' to edit
    missing = workflow_files()
    assert list(missing({"README.md"})) == [WORKFLOW_PATH]
    assert missing({WORKFLOW_PATH}) == {}


def test_the_role_setting_must_be_a_role_arn() -> None:
    settings = parse_settings({"github": {"repo": "acme/app", "aws_role_arn": ROLE}}, "mmm.yaml")
    assert settings.github.aws_role_arn == ROLE
    with pytest.raises(SpecError, match="aws_role_arn"):
        parse_settings({"github": {"aws_role_arn": "golden-tests"}}, "mmm.yaml")


def test_the_golden_test_passes_and_fails_outside_mmm(tmp_path: Path) -> None:
    """One run where nothing of mmm can be imported: this copy passes, a copy whose golden
    data no longer matches fails with the case named."""
    files, _ = _files(tmp_path)
    repo = _repository(tmp_path, files)
    tests = repo / "tests" / "mmm"
    broken = (tests / "test_churn_golden.py").read_text().replace('"churn.jsonl"', '"bad.jsonl"')
    (tests / "test_bad_golden.py").write_text(broken)
    cases = [json.loads(line) for line in (tests / "golden/churn.jsonl").read_text().splitlines()]
    cases[1]["output"] += 1.0
    # a lone "\r" is padding to mmm, not a line: the mismatch is still at line 2 (found by
    # fuzzing: the test read the file as text, where "\r" ends a line, and said line 3)
    bad = "\r" + "".join(json.dumps(c) + "\n" for c in cases)
    (tests / "golden/bad.jsonl").write_bytes(bad.encode())
    blocked = "import sys, pytest; sys.modules.update(core=None, mmm_cli=None); "
    blocked += "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-p', 'no:randomly', "
    blocked += "'-p', 'no:xdist', '-p', 'no:timeout', 'tests/mmm']))"
    run = subprocess.run([sys.executable, "-I", "-c", blocked], cwd=repo, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 passed" in run.stdout
    assert "first mismatch at line 2" in run.stdout


@pytest.mark.slow
def test_the_workflow_steps_run_in_a_clean_virtual_environment(tmp_path: Path) -> None:
    """The workflow's `run:` steps in a new venv (what setup-python gives), with packages
    from the local index only; checkout is the repository as the working directory."""
    if not LOCAL_INDEX.startswith("file://") or not Path(LOCAL_INDEX[7:]).is_dir():
        pytest.skip(f"no local package index at {LOCAL_INDEX}")
    import sklearn

    files, _ = _files(tmp_path)
    repo = _repository(tmp_path, files)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # The model was trained with this scikit-learn: the runner installs the same one.
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"scikit-learn=={sklearn.__version__}\n")
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_INDEX_URL": LOCAL_INDEX,
        "PIP_CONSTRAINT": str(constraints),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    steps = yaml.safe_load((repo / WORKFLOW_PATH).read_text())["jobs"]["mmm-golden"]["steps"]
    ran = []
    for step in steps:
        if "run" not in step:
            continue
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=900)  # fmt: skip
        assert done.returncode == 0, f"{step['name']}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
        ran.append(done.stdout)
    assert "1 passed" in ran[-1]
    frozen = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], env=env,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    installed = {line.split("==")[0].lower() for line in frozen.splitlines()}
    assert "scikit-learn" in installed and "pytest" in installed
    assert not {"mmm", "pydantic", "boto3", "jinja2"} & installed


def test_the_golden_test_of_a_container_model_is_skipped_outside_mmm(tmp_path: Path) -> None:
    """A model only its serving container loads: the test on GitHub is the one the local code
    host runs, skipped with the reason, needing nothing installed but pytest."""
    folder = "s3://mmm-staging-us-east-1/models/churn_llm/1.1.0/model/"
    ctx = CodegenContext(
        endpoint="churn",
        model="churn_llm",
        version="1.1.0",
        library=Library.HUGGINGFACE,
        artifact_uri=folder,
        golden_cases_jsonl=container_golden(tmp_path / "golden.jsonl").read_text(),
        spec=DeploymentSpec(endpoint="churn"),
        deployment_id="dep-1",
        generated_at="2026-01-01T00:00:00+00:00",
    )
    local = render_files(ctx)
    files = self_contained(local)
    assert files == local
    test = files["tests/mmm/test_churn_golden.py"]
    assert REQUIRES.strip() not in test  # the workflow's install step finds nothing to add
    repo = _repository(tmp_path, files)
    blocked = "import sys, pytest; sys.modules.update(core=None, mmm_cli=None, numpy=None); "
    blocked += "sys.exit(pytest.main(['-q', '-rs', '-p', 'no:cacheprovider', '-p', 'no:randomly', "
    blocked += "'-p', 'no:xdist', '-p', 'no:timeout', 'tests/mmm']))"
    run = subprocess.run([sys.executable, "-I", "-c", blocked], cwd=repo, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 skipped" in run.stdout
    assert "is a huggingface model, which only its serving container loads" in run.stdout
