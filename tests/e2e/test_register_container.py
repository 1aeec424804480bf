"""`mmm register` takes a model folder for the libraries only a serving container loads, and
refuses a broken one, or a folder of another library, with one line and exit status 2."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Workspace
from tests.support.container_models import (
    container_golden,
    huggingface_folder,
    torchscript_archive,
)
from tests.support.models import train_sklearn_regressor


def test_register_takes_a_huggingface_folder(ws: Workspace) -> None:
    folder = huggingface_folder(ws.models / "llm", sharded=True)
    golden = container_golden(ws.models / "golden.jsonl")
    res = ws.ok(
        "register", "churn-llm", "--artifact", str(folder), "--library", "huggingface",
        "--golden", str(golden), "--json",
    )  # fmt: skip
    mv = res.json()
    assert (mv["version"], mv["library"], mv["format"]) == (1, "huggingface", "safetensors")
    archive = torchscript_archive(ws.models / "resnet.pt")
    args = ("--artifact", str(archive), "--library", "pytorch")
    assert ws.ok("register", "vision", *args).out.strip() == "1"
    listed = {m["name"] for m in ws.ok("models", "--json").json()}
    assert {"churn-llm", "vision"} <= listed
    # the embedded gateway cannot serve one: said in one line, nothing recorded
    refused = ws.run("deploy", "vision", "1", "--endpoint", "vision-api")
    assert refused.code != 0 and "only SageMaker serving runs its container" in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    assert ws.ok("status", "--json").json() == []


def test_register_refuses_a_broken_folder_in_one_line(ws: Workspace) -> None:
    folder = huggingface_folder(ws.models / "llm")
    (folder / "model.safetensors").write_bytes(b"\xff" * 16)
    res = ws.run("register", "churn-llm", "--artifact", str(folder), "--library", "huggingface")
    assert res.code == 2, res.err
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.err
    assert f"{folder / 'model.safetensors'}: not a safetensors file" in lines[0]
    assert ws.ok("models", "--json").json() == []


def test_register_refuses_a_folder_of_a_library_mmm_loads(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "sk"
    train_sklearn_regressor(folder)
    res = ws.run("register", "churn", "--artifact", str(folder), "--library", "sklearn")
    assert res.code == 2 and f"{folder}: no such file" in res.err
    assert len(res.err.strip().splitlines()) == 1
