"""The local code host on real git repositories, and the generated code run for real.

Every test works in its own temporary folder, with HOME pointing at an empty
folder: the code host must not need a git identity or configuration of the user.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from core.adapters.local.artifacts import LocalArtifactStore
from core.adapters.local.codehost import LocalGitCodeHost
from core.codegen import CodegenContext, managed_paths, render_change, render_files
from core.domain import Library
from core.ports import Change, CodeHost, InvalidInput, NotFound, PortError
from core.spec import parse_deployment
from tests.support.container_models import container_golden, huggingface_folder

PASSING = "def test_ok():\n    assert 1 + 1 == 2\n"
FAILING = "def test_broken():\n    assert 1 + 1 == 3, 'arithmetic is off'\n"


@pytest.fixture(autouse=True)
def no_user_git_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))  # must be ignored


@pytest.fixture
def host(tmp_path: Path) -> LocalGitCodeHost:
    return LocalGitCodeHost(tmp_path / "app", check_timeout_s=120)


def as_port(host: LocalGitCodeHost) -> CodeHost:
    return host  # mypy checks that the adapter satisfies the port


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    proc = subprocess.run(
        ["git", f"--git-dir={repo}", *args], capture_output=True, text=True, env=env, check=True
    )
    return proc.stdout.strip()


def commits_on(repo: Path, ref: str) -> int:
    return int(git(repo, "rev-list", "--count", ref))


# ---------------------------------------------------------------- repository


def test_a_new_folder_becomes_a_bare_repository_with_main(host: LocalGitCodeHost) -> None:
    assert not host.path.exists()  # nothing happens at construction
    assert host.files() == ["README.md"]
    assert git(host.path, "rev-parse", "--is-bare-repository") == "true"
    assert [c.subject for c in host.log()] == ["Initial commit"]
    assert LocalGitCodeHost(host.path).files() == ["README.md"]  # reopened, not re-created
    assert commits_on(host.path, "main") == 1


def test_hooks_planted_in_the_repository_never_run(
    host: LocalGitCodeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Model code runs as mmm's user and could write the repository: a hook would run with
    # mmm's environment at its next commit or ref update.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sekrit-for-a-hook")
    host.files()  # the repository exists
    ran = tmp_path / "hook-ran"
    for hook in ("reference-transaction", "pre-commit", "post-commit", "post-merge"):
        path = host.path / "hooks" / hook
        path.write_text(f"#!/bin/sh\nenv >> {ran}\n")
        path.chmod(0o755)
    change = host.open_change("dep-1", {"deploy/a.yaml": "a: 1\n"}, [], "Deploy a", "alice")
    assert host.merge(change).merged_sha is not None
    assert not ran.exists()


def test_a_folder_holding_other_things_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(PortError, match="not a git repository"):
        LocalGitCodeHost(folder).files()


# ---------------------------------------------------------------- open_change


def test_open_change_twice_gives_one_commit(host: LocalGitCodeHost) -> None:
    files = {"deploy/a.yaml": "a: 1\n", "mmm/endpoints/a.py": "A = 1\n", "w.txt": "é\r\n"}
    first = host.open_change("dep-1", files, [], "Deploy a", "alice")
    again = host.open_change("dep-1", files, [], "Deploy a", "alice")
    assert again == first
    assert first.merged_sha is None
    assert commits_on(host.path, "main..mmm/dep-1") == 1
    assert host.read("deploy/a.yaml", "mmm/dep-1") == "a: 1\n"
    assert host.read("w.txt", "mmm/dep-1") == "é\r\n"  # bytes kept as given
    assert host.files() == ["README.md"]  # main is untouched until the merge
    assert git(host.path, "log", "-1", "--format=%an", first.head) == "alice"
    assert host.branches() == ["mmm/dep-1"]


def test_open_change_with_new_content_replaces_its_commit(host: LocalGitCodeHost) -> None:
    first = host.open_change("dep-1", {"a.txt": "one\n"}, [], "t", "alice")
    second = host.open_change("dep-1", {"a.txt": "two\n"}, [], "t", "alice")
    assert second.head != first.head
    assert commits_on(host.path, "main..mmm/dep-1") == 1
    assert host.read("a.txt", "mmm/dep-1") == "two\n"


def test_open_change_is_reused_after_main_moved_on(host: LocalGitCodeHost) -> None:
    mine = host.open_change("dep-1", {"a.txt": "a\n"}, [], "t", "alice")
    other = host.open_change("dep-2", {"b.txt": "b\n"}, [], "t", "bob")
    host.merge(other)
    assert host.open_change("dep-1", {"a.txt": "a\n"}, [], "t", "alice") == mine


def test_open_change_rejects_paths_outside_the_repository(host: LocalGitCodeHost) -> None:
    for bad in ("../x.py", "/etc/passwd", ".git/config", "a//b", "a/./b", ""):
        with pytest.raises(InvalidInput, match="not a plain path"):
            host.open_change("dep-1", {bad: "x"}, [], "t", "alice")
    with pytest.raises(InvalidInput, match="change id"):
        host.open_change("../main", {"a": "x"}, [], "t", "alice")
    assert host.branches() == []


def test_author_names_git_would_refuse_are_cleaned(host: LocalGitCodeHost) -> None:
    change = host.open_change("dep-1", {"a": "x"}, [], "t", "Eve <eve@x>\nEvil")
    assert git(host.path, "log", "-1", "--format=%an", change.head) == "Eve eve@x Evil"


# ---------------------------------------------------------------- merge


def test_merge_twice_gives_one_merge_commit(host: LocalGitCodeHost) -> None:
    change = host.open_change("dep-1", {"deploy/a.yaml": "a: 1\n"}, [], "Deploy a", "alice")
    merged = host.merge(change)
    again = host.merge(change)
    from_another_process = LocalGitCodeHost(host.path).merge(change)
    assert merged.merged_sha is not None
    assert again.merged_sha == from_another_process.merged_sha == merged.merged_sha
    tip = host.log(1)[0]
    assert tip.sha == merged.merged_sha
    assert tip.parents[1] == change.head  # --no-ff: the change stays visible as one merge
    assert tip.change == "dep-1"
    assert tip.subject == "Merge change dep-1: Deploy a"
    assert sum(1 for c in host.log(50) if c.is_merge) == 1
    assert host.files() == ["README.md", "deploy/a.yaml"]
    assert host.files("deploy/") == ["deploy/a.yaml"]
    assert as_port(host).read("deploy/a.yaml") == "a: 1\n"
    assert host.read("deploy/missing.yaml") is None
    assert host.read("deploy/a.yaml", "main^1") is None  # main before the merge
    # Asked again after the merge, open_change reports the merged change.
    assert host.open_change("dep-1", {"deploy/a.yaml": "a: 1\n"}, [], "t", "a") == merged


def test_merge_keeps_what_main_gained_meanwhile(host: LocalGitCodeHost) -> None:
    first = host.open_change("dep-1", {"a.txt": "a\n"}, [], "t", "alice")
    second = host.open_change("dep-2", {"b.txt": "b\n"}, [], "t", "bob")
    host.merge(second)
    host.merge(first)
    assert host.files() == ["README.md", "a.txt", "b.txt"]


def test_deletions_remove_files_and_absent_ones_are_ignored(host: LocalGitCodeHost) -> None:
    host.merge(host.open_change("dep-1", {"keep.txt": "k\n", "gone.txt": "g\n"}, [], "t", "a"))
    removal = host.open_change("ret-1", {}, ["gone.txt", "never-there.txt"], "Retire", "a")
    host.merge(removal)
    assert host.files() == ["README.md", "keep.txt"]


def test_merge_conflict_names_the_files_and_leaves_main_alone(host: LocalGitCodeHost) -> None:
    one = host.open_change("dep-1", {"deploy/a.yaml": "version: 1\n"}, [], "t", "alice")
    two = host.open_change("dep-2", {"deploy/a.yaml": "version: 2\n"}, [], "t", "bob")
    host.merge(one)
    before = host.log(1)[0].sha
    with pytest.raises(
        PortError, match=r"merging change dep-2 into main: conflicts in deploy/a\.yaml"
    ):
        host.merge(two)
    assert host.log(1)[0].sha == before


def test_racing_workers_open_and_merge_once(host: LocalGitCodeHost) -> None:
    files = {"deploy/a.yaml": "a: 1\n"}
    hosts = [LocalGitCodeHost(host.path) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        opened = list(pool.map(lambda h: h.open_change("dep-1", files, [], "t", "a"), hosts))
        assert len({c.head for c in opened}) == 1
        merged = list(pool.map(lambda h: h.merge(opened[0]), hosts))
    assert len({c.merged_sha for c in merged}) == 1
    assert commits_on(host.path, "main..mmm/dep-1") == 0
    assert sum(1 for c in host.log(50) if c.is_merge) == 1
    leftovers = [p.name for p in host.path.parent.iterdir() if p.name.startswith(".app")]
    assert leftovers == []  # no half-made repository left behind


def test_merge_of_an_unknown_commit_is_not_found(host: LocalGitCodeHost) -> None:
    ghost = Change(id="dep-9", url="x", head="0" * 40)
    with pytest.raises(NotFound, match="change dep-9"):
        host.merge(ghost)


def test_a_change_merged_by_hand_is_recognised(host: LocalGitCodeHost) -> None:
    change = host.open_change("dep-1", {"a.txt": "a\n"}, [], "t", "alice")
    git(host.path, "update-ref", "refs/heads/main", change.head)  # a fast-forward by a person
    assert host.merge(change).merged_sha == change.head
    assert not any(c.is_merge for c in host.log())


# ---------------------------------------------------------------- revert


def test_revert_twice_gives_one_revert_commit(host: LocalGitCodeHost) -> None:
    host.merge(host.open_change("dep-0", {"base.txt": "base\n"}, [], "t", "a"))
    change = host.open_change("dep-1", {"base.txt": "changed\n", "new.txt": "n\n"}, [], "t", "a")
    merged = host.merge(change)
    revert = host.revert(change, "bob")
    assert revert is not None
    assert host.revert(change, "bob") == revert
    # The change as open_change returned it (no merged_sha) finds the same revert.
    assert LocalGitCodeHost(host.path).revert(change, "bob") == revert
    tip = host.log(1)[0]
    assert (tip.sha, tip.revert, tip.author) == (revert, "dep-1", "bob")
    assert sum(1 for c in host.log(50) if c.revert == "dep-1") == 1
    assert host.files() == ["README.md", "base.txt"]
    assert host.read("base.txt") == "base\n"
    assert host.merge(change) == merged  # merged once, and merge stays a no-op


def test_revert_keeps_later_changes_to_other_files(host: LocalGitCodeHost) -> None:
    change = host.open_change("dep-1", {"a.txt": "a\n"}, [], "t", "alice")
    host.merge(change)
    host.merge(host.open_change("dep-2", {"b.txt": "b\n"}, [], "t", "bob"))
    host.revert(change, "carol")
    assert host.files() == ["README.md", "b.txt"]


def test_revert_of_an_open_change_closes_it(host: LocalGitCodeHost) -> None:
    change = host.open_change("dep-1", {"a.txt": "a\n"}, [], "t", "alice")
    assert host.revert(change, "bob") is None
    assert host.revert(change, "bob") is None
    assert host.branches() == []
    assert [c.subject for c in host.log()] == ["Initial commit"]


def test_revert_conflict_names_the_files(host: LocalGitCodeHost) -> None:
    first = host.open_change("dep-1", {"a.yaml": "v: 1\n"}, [], "t", "alice")
    host.merge(first)
    host.merge(host.open_change("dep-2", {"a.yaml": "v: 2\n"}, [], "t", "bob"))
    with pytest.raises(PortError, match=r"reverting change dep-1 on main: conflicts in a\.yaml"):
        host.revert(first, "carol")


# ---------------------------------------------------------------- checks


def test_checks_pass_fail_and_report(host: LocalGitCodeHost) -> None:
    good = host.run_checks(
        host.open_change("dep-1", {"tests/mmm/test_a.py": PASSING}, [], "t", "a")
    )
    assert good.passed
    assert good.summary.startswith("1 passed")
    bad_change = host.open_change(
        "dep-2", {"tests/mmm/test_a.py": PASSING, "tests/mmm/test_b.py": FAILING}, [], "t", "a"
    )
    bad = host.run_checks(bad_change)
    assert not bad.passed
    assert bad.summary.startswith("1 failed, 1 passed")
    assert "tests/mmm/test_b.py::test_broken" in bad.summary
    assert "arithmetic is off" in bad.output


def test_checks_run_the_change_not_main(host: LocalGitCodeHost) -> None:
    host.merge(host.open_change("dep-1", {"tests/mmm/test_b.py": FAILING}, [], "t", "a"))
    fixed = host.open_change("dep-2", {"tests/mmm/test_b.py": PASSING}, [], "t", "a")
    assert host.run_checks(fixed).passed


def test_no_tests_folder_means_no_checks(host: LocalGitCodeHost) -> None:
    result = host.run_checks(
        host.open_change("dep-1", {"tests/other/test_x.py": FAILING}, [], "t", "a")
    )
    assert (result.passed, result.summary) == (True, "no checks")


def test_checks_time_out_and_output_is_cut(tmp_path: Path) -> None:
    impatient = LocalGitCodeHost(tmp_path / "app", check_timeout_s=2, output_limit=300)
    slow = (
        "import time\n\ndef test_slow():\n    print('x' * 5000, flush=True)\n    time.sleep(60)\n"
    )
    result = impatient.run_checks(
        impatient.open_change("dep-1", {"tests/mmm/test_slow.py": slow}, [], "t", "a")
    )
    assert not result.passed
    assert result.summary == "checks timed out after 2 s"
    # patient enough for a busy machine: the noisy test's output must arrive to be cut
    host = LocalGitCodeHost(tmp_path / "app", check_timeout_s=240, output_limit=300)
    noisy = "def test_noisy():\n    assert False, 'y' * 5000\n"
    result = host.run_checks(
        host.open_change("dep-2", {"tests/mmm/test_n.py": noisy}, [], "t", "a")
    )
    assert not result.passed
    assert result.output.startswith("[") and "characters cut]" in result.output
    assert len(result.output) < 400


# ---------------------------------------------------------------- generated code, run for real


@pytest.fixture(scope="module")
def sklearn_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tiny fitted classifier saved with joblib, and golden data it reproduces."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    path = tmp_path_factory.mktemp("artifacts") / "model.joblib"
    joblib.dump(model, path)
    rows = x[:10].tolist()
    golden = "".join(
        json.dumps({"input": row, "output": int(label)}) + "\n"
        for row, label in zip(rows, model.predict(x[:10]), strict=True)
    )
    return path, golden


def codegen_ctx(artifact: Path, golden: str | None, deployment_id: str) -> CodegenContext:
    return CodegenContext(
        endpoint="churn-scorer",
        model="churn",
        version=1,
        library=Library.SKLEARN,
        artifact_uri=str(artifact),
        golden_cases_jsonl=golden,
        spec=parse_deployment({"endpoint": "churn-scorer", "env": {"API_KEY": "${API_KEY}"}}),
        deployment_id=deployment_id,
        generated_at="2026-01-01T00:00:00.000Z",
    )


def test_generated_golden_test_passes_then_retirement_removes_everything(
    host: LocalGitCodeHost, sklearn_model: tuple[Path, str]
) -> None:
    artifact, golden = sklearn_model
    files, deletions = render_change(codegen_ctx(artifact, golden, "dep-1"))
    change = host.open_change("dep-1", files, deletions, "Deploy churn v1", "alice")
    result = host.run_checks(change)
    assert result.passed, result.output
    assert result.summary.startswith("1 passed")
    host.merge(change)
    assert set(managed_paths("churn-scorer", "churn")) <= set(host.files())
    removal = host.open_change("ret-1", {}, managed_paths("churn-scorer", "churn"), "Retire", "a")
    host.merge(removal)
    assert host.files() == ["README.md"]


def test_generated_golden_test_fails_on_wrong_golden_data(
    host: LocalGitCodeHost, sklearn_model: tuple[Path, str]
) -> None:
    artifact, golden = sklearn_model
    first = json.loads(golden.splitlines()[0])
    wrong = json.dumps({"input": first["input"], "output": 1 - first["output"]}) + "\n"
    files = render_files(codegen_ctx(artifact, wrong + golden, "dep-2"))
    result = host.run_checks(host.open_change("dep-2", files, [], "t", "alice"))
    assert not result.passed
    assert "golden data: 10/11 cases match" in result.output


def _load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("generated_client", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


class _Gateway(BaseHTTPRequestHandler):
    seen: list[tuple[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, body))
        if self.path != "/endpoints/churn-scorer/invocations":
            self.send_error(404, "no such endpoint")
            return
        answer = json.dumps({"predictions": [len(r) for r in body["instances"]], "variant": "v1"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    _Gateway.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_generated_client_posts_instances_to_the_gateway(
    tmp_path: Path, gateway: str, monkeypatch: pytest.MonkeyPatch, sklearn_model: tuple[Path, str]
) -> None:
    files = render_files(codegen_ctx(sklearn_model[0], None, "dep-3"))
    client_file = tmp_path / "client.py"
    client_file.write_text(files["mmm/endpoints/churn_scorer.py"])
    client = _load_module(client_file)
    monkeypatch.setenv("MMM_GATEWAY_URL", gateway)
    assert client.predict([[1, 2, 3], [4, 5]]) == [3, 2]
    assert _Gateway.seen == [
        ("/endpoints/churn-scorer/invocations", {"instances": [[1.0, 2.0, 3.0], [4.0, 5.0]]})
    ]
    invocation = client.ChurnScorerClient().invoke([[0.5]])
    assert (invocation.predictions, invocation.variant) == ([1], "v1")
    with pytest.raises(client.EndpointError, match="HTTP 404"):
        client.ChurnScorerClient(base_url=f"{gateway}/elsewhere").predict([[1.0]])


# ---------------------------------------------------------------- models only a container loads


class _WatchedStore(LocalArtifactStore):
    """The embedded buckets, noting which artifacts the checks runner fetches."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fetched: list[str] = []

    def local_path(self, uri: str) -> Path:
        self.fetched.append(uri)
        return super().local_path(uri)


def test_a_skipped_golden_test_of_a_container_model_passes_the_checks(tmp_path: Path) -> None:
    """Its golden data is checked on the endpoint: the test is skipped with the reason, the
    checks pass, and the model folder the descriptor names is never fetched for them."""
    store = _WatchedStore(tmp_path / "buckets")
    folder = store.put("staging", "models/churn-llm/1/model/", huggingface_folder(tmp_path / "llm"))
    host = LocalGitCodeHost(tmp_path / "app", check_timeout_s=120, artifacts=store)
    ctx = codegen_ctx(Path("unused"), container_golden(tmp_path / "g.jsonl").read_text(), "dep-7")
    ctx = ctx.model_copy(
        update={"model": "churn-llm", "library": Library.HUGGINGFACE, "artifact_uri": folder}
    )
    store.fetched.clear()
    result = host.run_checks(host.open_change("dep-7", render_files(ctx), [], "t", "alice"))
    assert result.passed, result.output
    assert result.summary.startswith("1 skipped"), result.summary
    assert store.fetched == []
    # beside a test that runs, the skipped one changes nothing: a failure still fails
    files = {**render_files(ctx), "tests/mmm/test_other.py": FAILING}
    failed = host.run_checks(host.open_change("dep-8", files, [], "t", "alice"))
    assert not failed.passed and failed.summary.startswith("1 failed, 1 skipped")


def test_generated_client_of_a_container_model_posts_instances_as_they_are(
    tmp_path: Path, gateway: str
) -> None:
    ctx = codegen_ctx(Path("unused"), None, "dep-9").model_copy(
        update={"library": Library.HUGGINGFACE, "artifact_uri": "s3://b/models/churn/1/model/"}
    )
    client_file = tmp_path / "client.py"
    client_file.write_text(render_files(ctx)["mmm/endpoints/churn_scorer.py"])
    client = _load_module(client_file)
    prompt = {"inputs": "What is 1 + 1?", "parameters": {"max_new_tokens": 8}}
    assert client.ChurnScorerClient(base_url=gateway).predict([prompt]) == [2]  # len(prompt)
    assert _Gateway.seen == [("/endpoints/churn-scorer/invocations", {"instances": [prompt]})]
