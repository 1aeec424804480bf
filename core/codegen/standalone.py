"""What mmm writes into a repository on GitHub, where its golden tests run in GitHub Actions.

There the golden test is self-contained: it loads the model with its own library (joblib,
xgboost or onnxruntime) from the artifact (a local path, or `s3://` through boto3 with the
repository's own credentials) and compares it with the golden cases, without importing
anything of mmm. Its first lines name the packages it needs (`# mmm-requires: ...`), and
the workflow `.github/workflows/mmm-golden.yml`, added on first use, installs those and
runs the tests. The embedded code host keeps the tests of `core.codegen.render`, which it
runs beside mmm.

A model only its serving container loads has its golden data checked on the endpoint
(`verification.golden_on: endpoint`): its test is the skipped one `core.codegen.render`
writes, the same on every code host, needing no package but pytest (no `mmm-requires` line).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import yaml

from core.codegen.render import GOLDEN_ON_ENDPOINT, _templates, endpoint_checked_test, golden_on
from core.domain import Library
from core.layout import DESCRIPTORS, code_paths
from core.ports import InvalidInput

WORKFLOW_PATH = ".github/workflows/mmm-golden.yml"
REQUIRES = "# mmm-requires: "

# The packages a test needs to load an artifact of each library and format.
_NATIVE_XGBOOST = ("json", "ubj")
_PACKAGES = {
    "sklearn": ["scikit-learn"],
    "xgboost": ["xgboost"],
    "onnx": ["onnxruntime", "numpy"],
}


def _format(library: str, artifact_uri: str) -> str:
    suffix = PurePosixPath(artifact_uri).suffix.lower().lstrip(".")
    if library == "onnx":
        return "onnx"
    if library == "xgboost" and suffix in _NATIVE_XGBOOST:
        return suffix
    return "joblib"  # joblib reads plain pickles too


def requirements(library: str, artifact_uri: str) -> list[str]:
    """The packages the self-contained test of such an artifact installs: none for a model
    only its serving container loads (its test is skipped: checked on the endpoint)."""
    if Library(library).container_only:
        return []
    packages = list(_PACKAGES[library])
    if _format(library, artifact_uri) == "joblib":
        packages += ["joblib"]
        if library == "xgboost":  # a pickled estimator is xgboost's sklearn wrapper
            packages += ["scikit-learn"]
    if artifact_uri.startswith("s3://"):
        packages += ["boto3"]
    return sorted(set(packages))


def standalone_test(descriptor: str) -> tuple[str, str] | None:
    """(path, text) of the self-contained golden test of a generated IaC descriptor, or
    None when the descriptor names no golden data."""
    iac: dict[str, Any] = yaml.safe_load(descriptor)
    model, endpoint = iac["model"], iac["endpoint"]
    golden = iac["verification"].get("golden")
    if not golden:
        return None
    test_path = code_paths(endpoint["name"], model["name"])[2]
    library, uri = str(model["library"]), str(model["artifact_uri"])
    # A descriptor written before `golden_on` existed says it by its library.
    if (iac["verification"].get("golden_on") or golden_on(Library(library))) == GOLDEN_ON_ENDPOINT:
        text = endpoint_checked_test(
            deployment_id=iac["metadata"]["deployment"],
            generated_at=iac["metadata"]["generated_at"],
            endpoint=endpoint["name"],
            model=model["name"],
            version=str(model["version"]),
            library=library,
        )
        return test_path, text
    values = {
        "deployment_id": iac["metadata"]["deployment"],
        "generated_at": iac["metadata"]["generated_at"],
        "endpoint": endpoint["name"],
        "model": model["name"],
        "version": str(model["version"]),
        "library": library,
        "format": _format(library, uri),
        "artifact_uri": uri,
        "tolerance": float(iac["verification"]["tolerance"]),
        "golden_name": PurePosixPath(golden).name,
        "requires": requirements(library, uri),
    }
    text = _templates().get_template("test_golden_standalone.py.j2").render(values)
    return test_path, text


def self_contained(files: dict[str, str]) -> dict[str, str]:
    """`files` of a change with each golden test made self-contained (the test beside every
    IaC descriptor among them); other files are left as they are."""
    out = dict(files)
    for path, text in files.items():
        if not (path.startswith(DESCRIPTORS) and path.endswith(".yaml")):
            continue
        try:
            made = standalone_test(text)
        except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
            raise InvalidInput(f"{path}: not a descriptor mmm wrote ({exc})") from None
        if made is not None and made[0] in out:
            out[made[0]] = made[1]
    return out


def workflow(
    base_branch: str = "main", role_arn: str | None = None, region: str = "us-east-1"
) -> str:
    """The GitHub Actions workflow that runs the golden tests. With `role_arn`, a role
    assumed through GitHub's OIDC gives the tests read access to artifacts on S3."""
    return (
        _templates()
        .get_template("mmm-golden.yml.j2")
        .render(
            base_branch=base_branch,
            role_arn=role_arn,
            region=region,
            python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        )
    )


def workflow_files(
    base_branch: str = "main", role_arn: str | None = None, region: str = "us-east-1"
) -> Callable[[set[str]], dict[str, str]]:
    """The files a change adds when the base branch lacks them (the workflow, on first use;
    a workflow already there, maybe edited by the repository's owners, is left alone)."""
    text = workflow(base_branch, role_arn, region)

    def missing(on_base: set[str]) -> dict[str, str]:
        return {} if WORKFLOW_PATH in on_base else {WORKFLOW_PATH: text}

    return missing
