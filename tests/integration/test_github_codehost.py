"""The GitHub code host adapter, driving real PyGithub against a local fake of GitHub's
REST API that keeps branches, commits, trees and pull requests and records requests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.adapters.github import GitHubCodeHost
from core.adapters.github.checks import Check, verdict
from core.adapters.github.client import retry_after_s
from core.bootstrap import WorkspaceError, build_codehost, build_registry, load_workspace
from core.ports import PortError, TransientError
from core.spec import SpecError
from tests.support.fake_github import CheckPlan, FakeGitHub
from tests.support.real_backends import GITHUB_TOKEN, REPO, github_codehost

FILES = {"deploy/churn/churn.yaml": "model: churn\n", "tests/mmm/test_churn.py": "x = 1\n"}


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(REPO, token=GITHUB_TOKEN) as fake:
        yield fake


def test_a_change_is_a_pull_request_that_merges_once(gh: FakeGitHub) -> None:
    host = github_codehost(gh)
    change = host.open_change("dep-1", FILES, [], "Deploy churn v1.0.0 to churn", "alice")
    assert change.id == "dep-1" and change.url.endswith("/pull/1")
    assert gh.files("mmm/dep-1") == {"README.md": "# app\n", **FILES}
    pull = gh.pull_of("mmm/dep-1")
    assert pull is not None and pull.base == "main" and pull.title.startswith("Deploy churn")
    assert "dep-1" in pull.body and "deploy/churn/churn.yaml" in pull.body
    assert GITHUB_TOKEN not in pull.body
    # opening it again (a resumed worker) finds it
    again = host.open_change("dep-1", FILES, [], "Deploy churn v1.0.0 to churn", "alice")
    assert again == change
    assert len(gh.requests_to("POST", "/pulls$")) == 1
    assert len(gh.requests_to("POST", "/git/commits$")) == 1

    assert host.checks(change) is not None
    merged = host.merge(change)
    assert merged.merged_sha == gh.head("main")
    assert host.merge(change) == merged
    assert len(gh.requests_to("PUT", r"/pulls/1/merge$")) == 1
    assert host.files("deploy/") == ["deploy/churn/churn.yaml"]
    assert host.read("deploy/churn/churn.yaml") == "model: churn\n"
    assert host.read("nothing/here") is None
    assert {r.authorization for r in gh.requests} == {f"token {GITHUB_TOKEN}"}


def test_checks_pending_for_a_while_then_passing(gh: FakeGitHub) -> None:
    gh.checks = CheckPlan(name="golden", pending_polls=2, status="ci/lint")
    host = github_codehost(gh)
    change = host.open_change("dep-2", FILES, [], "Deploy", "alice")
    assert host.checks(change) is None
    assert host.checks(change) is None
    result = host.checks(change)
    assert result is not None and result.passed, result
    assert result.summary == "2 passed: ci/lint, golden"
    assert len(gh.requests_to("GET", "/check-runs$")) == 3
    assert len(gh.requests_to("GET", "/status$")) == 3
    assert gh.writes()[-1].path.endswith("/pulls")  # looking never writes


def test_failing_checks_are_named_and_closing_deletes_the_branch(gh: FakeGitHub) -> None:
    gh.checks = CheckPlan(name="golden-tests", conclusion="failure", summary="1 failed")
    host = github_codehost(gh)
    change = host.open_change("dep-3", FILES, [], "Deploy", "alice")
    result = host.checks(change)
    assert result is not None and not result.passed
    assert result.summary == "failing check: golden-tests (1 failed)"
    assert host.revert(change, "alice") is None
    pull = gh.pull_of("mmm/dep-3")
    assert pull is not None and (pull.state, pull.merged) == ("closed", False)
    assert "mmm/dep-3" not in gh.refs
    assert host.revert(change, "alice") is None  # closed already: nothing more
    assert gh.files() == {"README.md": "# app\n"}


def test_a_failing_commit_status_is_named(gh: FakeGitHub) -> None:
    gh.checks = None
    host = github_codehost(gh)
    change = host.open_change("dep-4", FILES, [], "Deploy", "alice")
    gh.set_status(change.head, "ci/build", "error", "compiler crashed")
    result = host.checks(change)
    assert result is not None and result.summary == "failing check: ci/build (compiler crashed)"


def test_checks_that_never_report_time_out_clearly(gh: FakeGitHub) -> None:
    gh.checks = None
    now = [time.time()]
    host = github_codehost(gh, checks_timeout_s=600, clock=lambda: now[0])
    change = host.open_change("dep-5", FILES, [], "Deploy", "alice")
    assert host.checks(change) is None
    now[0] += 601
    result = host.checks(change)
    assert result is not None and not result.passed
    assert "no check reported" in result.summary and "within 600s" in result.summary


def test_a_rate_limit_is_transient_and_says_when_it_resets(gh: FakeGitHub) -> None:
    host = github_codehost(gh)
    reset = int(time.time()) + 120
    gh.rate_limit(reset_at=reset)
    with pytest.raises(TransientError, match=r"rate limit.*resets at .*waiting on GitHub") as hit:
        host.open_change("dep-6", FILES, [], "Deploy", "alice")
    # the worker waits until the reset: the seconds left until X-RateLimit-Reset
    assert hit.value.retry_after_s is not None and 100 <= hit.value.retry_after_s <= 120
    assert gh.writes() == []
    change = host.open_change("dep-6", FILES, [], "Deploy", "alice")  # after the reset
    assert change.url.endswith("/pull/1")
    gh.fail("GET", "/check-runs$", status=502)
    with pytest.raises(TransientError, match="HTTP 502") as busy:
        host.checks(change)
    assert busy.value.retry_after_s is None  # GitHub did not say: the worker's backoff


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_rate_limit_waits_as_long_as_retry_after_says(
    gh: FakeGitHub, status: int
) -> None:
    host = github_codehost(gh)
    gh.rate_limit(retry_after=90, status=status)
    with pytest.raises(TransientError, match=r"retry after 90 s; waiting on GitHub") as hit:
        host.read("deploy/churn/churn.yaml")
    assert hit.value.retry_after_s == 90
    assert host.read("README.md") == "# app\n"  # the next answer is a 200


def test_retry_after_reads_either_header() -> None:
    assert retry_after_s({"Retry-After": "30", "X-RateLimit-Reset": "1300"}, now=1000) == 30
    assert retry_after_s({"x-ratelimit-reset": "1300"}, now=1000) == 300
    assert retry_after_s({"X-RateLimit-Reset": "900"}, now=1000) == 0  # already reset
    assert retry_after_s({}, now=1000) is None
    assert retry_after_s(None) is None


def test_revert_after_merge_goes_through_a_merged_revert_pull_request(gh: FakeGitHub) -> None:
    host = github_codehost(gh)
    gh.commit_files("main", {"deploy/churn/churn.yaml": "model: old\n"}, "by hand")
    change = host.merge(host.open_change("dep-7", FILES, [], "Deploy", "alice"))
    gh.commit_files("main", {"docs/unrelated.md": "kept\n"}, "someone else's work")
    sha = host.revert(change, "bob")
    assert sha == gh.head("main")
    assert gh.files() == {
        "README.md": "# app\n",
        "deploy/churn/churn.yaml": "model: old\n",  # as it was before the change
        "docs/unrelated.md": "kept\n",
    }
    revert = gh.pull_of("mmm/dep-7-revert")
    assert revert is not None and revert.merged and "#1" in revert.body
    assert host.revert(change, "bob") == sha  # once only
    assert len(gh.requests_to("POST", "/pulls$")) == 2


def test_retirement_removes_files_through_a_pull_request(gh: FakeGitHub) -> None:
    host = github_codehost(gh)
    host.merge(host.open_change("dep-8", FILES, [], "Deploy", "alice"))
    removal = host.open_change("ret-1", {}, sorted(FILES), "Retire churn", "alice")
    assert host.checks(removal) is not None
    host.merge(removal)
    assert gh.files() == {"README.md": "# app\n"}
    pull = gh.pull_of("mmm/ret-1")
    assert pull is not None and "Removes:" in pull.body


def test_the_checks_verdict() -> None:
    ok, running = Check("a", True, True), Check("b", False, False)
    assert verdict([ok, running], "f" * 40, 10, 60) is None
    late = verdict([ok, running], "f" * 40, 61, 60)
    assert late is not None and late.summary == "checks did not finish within 60s: pending b"
    bad = verdict([running, Check("c", True, False, "boom")], "f" * 40, 0, 60)
    assert bad is not None and bad.summary == "failing check: c (boom)"


def _settings(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "mmm.yaml").write_text(text)
    return home


def test_settings_choose_the_adapters_and_name_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("COMET_API_KEY", raising=False)
    home = _settings(
        tmp_path / "a",
        "backends: {registry: comet, codehost: github}\n"
        "comet: {workspace: risk}\ngithub: {repo: acme/backend, checks_timeout_s: 60}\n",
    )
    ws = load_workspace(home)
    with pytest.raises(WorkspaceError, match="needs GITHUB_TOKEN in the environment"):
        build_codehost(ws)
    with pytest.raises(WorkspaceError, match="needs COMET_API_KEY"):
        build_registry(ws)
    monkeypatch.setenv("GITHUB_TOKEN", "t")
    monkeypatch.setenv("COMET_API_KEY", "k")
    host = build_codehost(ws)
    assert isinstance(host, GitHubCodeHost) and host.checks_timeout_s == 60
    assert type(build_registry(ws)).__name__ == "CometRegistry"
    with pytest.raises(WorkspaceError, match=r"comet\.workspace"):
        build_registry(load_workspace(_settings(tmp_path / "b", "backends: {registry: comet}\n")))
    with pytest.raises(SpecError, match=r"github.token: unknown key"):
        load_workspace(_settings(tmp_path / "c", "github: {token: abc}\n"))
    with pytest.raises(SpecError, match=r"github.repo: .*owner/name"):
        load_workspace(_settings(tmp_path / "d", "github: {repo: nope}\n"))


def test_a_closed_pull_request_is_not_merged(gh: FakeGitHub) -> None:
    host = github_codehost(gh)
    change = host.open_change("dep-9", FILES, [], "Deploy", "alice")
    host.revert(change, "alice")
    with pytest.raises(PortError, match="closed"):
        host.merge(change)
