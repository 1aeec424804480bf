"""`core.ports.CodeHost` on a GitHub repository: a pull request per change.

- a change is one commit on the branch `mmm/<change id>` (made with the Git Data API:
  one tree, one commit, one ref), on top of the base branch, and its pull request;
- its checks are the commit statuses and check runs of the pull request's head, read
  without waiting (`core.adapters.github.checks` decides);
- a merge is GitHub's merge of the pull request (a merge commit);
- undoing an open change closes its pull request and deletes its branch; undoing a
  merged one opens a revert pull request (`mmm/<change id>-revert`) that puts the
  change's files back as they were before it, and merges it.

Every step finds what an earlier, interrupted call left (the branch, the pull request,
the merge) before it writes, so a call repeated after a crash does nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from core.adapters.github.checks import Check, from_run, from_status, verdict
from core.adapters.github.client import GitHubClient, translated
from core.ports import Change, CheckResult, InvalidInput, NotFound, PortError

BRANCH_PREFIX = "mmm/"
REVERT_SUFFIX = "-revert"
_MODE = "100644"


def pull_body(change_id: str, title: str, files: dict[str, str], deletions: list[str]) -> str:
    """What the pull request says: what it deploys, its files, and the deployment."""
    lines = [title, "", f"Deployment `{change_id}`: `mmm status {change_id}` shows it.", ""]
    if files:
        lines += ["Writes:", *[f"- `{p}`" for p in sorted(files)], ""]
    if deletions:
        lines += ["Removes:", *[f"- `{p}`" for p in sorted(deletions)], ""]
    lines.append("Opened by mmm; it merges this when the checks pass, and reverts it on abort.")
    return "\n".join(lines) + "\n"


class GitHubCodeHost:
    """Pull requests on `repo` (owner/name) against `base_branch`, with `token`
    (`GITHUB_TOKEN`); `base_url` is the API root (None: github.com)."""

    def __init__(
        self,
        repo: str,
        token: str,
        *,
        base_url: str | None = None,
        base_branch: str = "main",
        checks_timeout_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
        seconds_between_requests: float | None = None,
        seconds_between_writes: float | None = None,
        extra_files: Callable[[set[str]], dict[str, str]] | None = None,
        rewrite_files: Callable[[dict[str, str]], dict[str, str]] | None = None,
    ) -> None:
        """`extra_files(paths on the base branch)`: files every change adds when they are
        missing there (the checks' workflow, on first use). `rewrite_files(files)`: the
        files as this repository gets them (golden tests that run without mmm, in GitHub
        Actions: `core.codegen.standalone`)."""
        self.repo_name = repo
        self.base_branch = base_branch
        self.checks_timeout_s = checks_timeout_s
        self.clock = clock
        self.extra_files = extra_files
        self.rewrite_files = rewrite_files
        self._client = GitHubClient(
            token,
            base_url,
            seconds_between_requests=seconds_between_requests,
            seconds_between_writes=seconds_between_writes,
        )
        self._repo: Any = None

    # ------------------------------------------------------------ plumbing

    def repo(self) -> Any:
        if self._repo is None:
            github = self._client.github()
            with translated(f"opening {self.repo_name}"):
                self._repo = github.get_repo(self.repo_name, lazy=True)
        return self._repo

    def _branch(self, change_id: str, suffix: str = "") -> str:
        if not change_id or any(c in change_id for c in " ~^:?*[\\\n") or ".." in change_id:
            raise InvalidInput(f"change id {change_id!r}: not usable in a branch name")
        return f"{BRANCH_PREFIX}{change_id}{suffix}"

    def _head_of(self, branch: str) -> str | None:
        try:
            with translated(f"reading branch {branch}"):
                return str(self.repo().get_git_ref(f"heads/{branch}").object.sha)
        except NotFound:
            return None

    def _base_head(self) -> str:
        head = self._head_of(self.base_branch)
        if head is None:
            raise PortError(f"{self.repo_name} has no branch {self.base_branch}")
        return head

    def _pull(self, branch: str) -> Any | None:
        """The newest pull request from `branch` (open, merged or closed)."""
        owner = self.repo_name.split("/")[0]
        with translated(f"finding the pull request of {branch}"):
            pulls = list(self.repo().get_pulls(state="all", head=f"{owner}:{branch}"))
        pulls = [p for p in pulls if p.head.ref == branch]
        return max(pulls, key=lambda p: p.number) if pulls else None

    def _tree_files(self, commit_sha: str) -> dict[str, str]:
        """Path -> blob sha of every file in a commit."""
        with translated(f"reading the files of {commit_sha[:12]}"):
            commit = self.repo().get_git_commit(commit_sha)
            tree = self.repo().get_git_tree(commit.tree.sha, recursive=True)
        return {e.path: e.sha for e in tree.tree if e.type == "blob"}

    def _commit(self, parent: str, elements: list[Any], message: str) -> str:
        from github import InputGitTreeElement

        with translated("writing a commit"):
            repo = self.repo()
            base = repo.get_git_tree(repo.get_git_commit(parent).tree.sha)
            tree = repo.create_git_tree(
                [InputGitTreeElement(**e) for e in elements], base_tree=base
            )
            return str(repo.create_git_commit(message, tree, [repo.get_git_commit(parent)]).sha)

    def _ensure_branch(self, branch: str, make: Callable[[], str]) -> str:
        head = self._head_of(branch)
        if head is not None:  # left by an interrupted call: its commit is the change
            return head
        sha = make()
        try:
            with translated(f"creating branch {branch}"):
                self.repo().create_git_ref(f"refs/heads/{branch}", sha)
        except PortError:
            head = self._head_of(branch)  # another worker made it first
            if head is None:
                raise
            return head
        return sha

    def _open_pull(self, branch: str, title: str, body: str) -> Any:
        pull = self._pull(branch)
        if pull is not None and (pull.state == "open" or pull.merged):
            return pull
        with translated(f"opening a pull request from {branch}"):
            return self.repo().create_pull(
                base=self.base_branch, head=branch, title=title, body=body
            )

    @staticmethod
    def _change(change_id: str, pull: Any) -> Change:
        merged = str(pull.merge_commit_sha) if pull.merged else None
        return Change(
            id=change_id, url=str(pull.html_url), head=str(pull.head.sha), merged_sha=merged
        )

    # ------------------------------------------------------------ CodeHost

    def open_change(
        self, change_id: str, files: dict[str, str], deletions: list[str], title: str, author: str
    ) -> Change:
        branch = self._branch(change_id)
        pull = self._pull(branch)
        if pull is not None and (pull.state == "open" or pull.merged):
            return self._change(change_id, pull)
        base = self._base_head()
        on_base = set(self._tree_files(base)) if self.extra_files or deletions else set()
        wanted = self.rewrite_files(dict(files)) if self.rewrite_files else dict(files)
        if self.extra_files is not None:
            wanted = {**self.extra_files(on_base), **wanted}
        elements: list[dict[str, Any]] = [
            {"path": p, "mode": _MODE, "type": "blob", "content": text}
            for p, text in sorted(wanted.items())
        ]
        elements += [
            {"path": p, "mode": _MODE, "type": "blob", "sha": None}
            for p in sorted(deletions)
            if p in on_base
        ]
        message = f"{title or f'Change {change_id}'}\n\nMmm-Change: {change_id}\n"
        self._ensure_branch(branch, lambda: self._commit(base, elements, message))
        body = pull_body(change_id, title, wanted, deletions)
        return self._change(change_id, self._open_pull(branch, title or message, body))

    def checks(self, change: Change) -> CheckResult | None:
        repo = self.repo()
        with translated(f"reading the checks of {change.id}"):
            commit = repo.get_commit(change.head)
            combined = commit.get_combined_status()
            found: list[Check] = [
                from_status(s.context, s.state, s.description) for s in combined.statuses
            ]
            found += [
                from_run(r.name, r.status, r.conclusion, getattr(r.output, "summary", None))
                for r in commit.get_check_runs()
            ]
            made = commit.commit.committer.date
        started = made.timestamp() if isinstance(made, datetime) else self.clock()
        return verdict(found, change.head, self.clock() - started, self.checks_timeout_s)

    def merge(self, change: Change) -> Change:
        branch = self._branch(change.id)
        pull = self._pull(branch)
        if pull is None:
            raise NotFound(f"change {change.id}: no pull request from {branch}")
        if pull.merged:
            return change.model_copy(update={"merged_sha": str(pull.merge_commit_sha)})
        if pull.state != "open":
            raise PortError(f"change {change.id}: its pull request #{pull.number} is closed")
        with translated(f"merging pull request #{pull.number}"):
            status = pull.merge(
                commit_title=f"Merge change {change.id}: {pull.title}",
                commit_message=f"Mmm-Change: {change.id}",
                merge_method="merge",
                sha=change.head,
            )
        return change.model_copy(update={"merged_sha": str(status.sha)})

    def revert(self, change: Change, author: str) -> str | None:
        pull = self._pull(self._branch(change.id))
        if pull is None or not pull.merged:
            if pull is not None and pull.state == "open":
                with translated(f"closing pull request #{pull.number}"):
                    pull.edit(state="closed")
            self._delete_branch(self._branch(change.id))
            return None
        return self._revert_merged(change, pull)

    def _delete_branch(self, branch: str) -> None:
        try:
            with translated(f"deleting branch {branch}"):
                ref = self.repo().get_git_ref(f"heads/{branch}")
                # Read first: the lazy ref's URL is the read route; GitHub's answer gives
                # the one DELETE takes (git/refs/...).
                _ = ref.object.sha
                ref.delete()
        except NotFound:
            pass

    def _revert_merged(self, change: Change, pull: Any) -> str:
        branch = self._branch(change.id, REVERT_SUFFIX)
        revert = self._pull(branch)
        if revert is None or not revert.merged:
            if revert is None or revert.state != "open":
                self._ensure_branch(branch, lambda: self._revert_commit(change, pull))
                title = f"Revert change {change.id}: {pull.title}"
                body = (
                    f"Reverts #{pull.number} (deployment `{change.id}`): its files are put "
                    "back as they were before it.\n"
                )
                revert = self._open_pull(branch, title, body)
            with translated(f"merging revert pull request #{revert.number}"):
                revert.merge(
                    commit_title=f"Revert change {change.id}",
                    commit_message=f"Mmm-Revert: {change.id}",
                    merge_method="merge",
                )
            revert = self._pull(branch)
            assert revert is not None
        return str(revert.merge_commit_sha)

    def _revert_commit(self, change: Change, pull: Any) -> str:
        merge = str(pull.merge_commit_sha)
        with translated(f"reading merge {merge[:12]}"):
            parent = str(self.repo().get_git_commit(merge).parents[0].sha)
        before, after = self._tree_files(parent), self._tree_files(merge)
        base = self._base_head()
        now = self._tree_files(base)
        elements: list[dict[str, Any]] = []
        for path in sorted(set(before) | set(after)):
            if before.get(path) == after.get(path):
                continue
            if path in before:
                elements.append({"path": path, "mode": _MODE, "type": "blob", "sha": before[path]})
            elif path in now:
                elements.append({"path": path, "mode": _MODE, "type": "blob", "sha": None})
        message = f"Revert change {change.id}\n\nThis reverts {merge}.\n\nMmm-Revert: {change.id}\n"
        return self._commit(base, elements, message)

    def files(self, prefix: str = "") -> list[str]:
        return sorted(p for p in self._tree_files(self._base_head()) if p.startswith(prefix))

    def read(self, path: str) -> str | None:
        try:
            with translated(f"reading {path}"):
                content = self.repo().get_contents(path, ref=self.base_branch)
        except NotFound:
            return None
        if isinstance(content, list):
            return None
        return bytes(content.decoded_content).decode("utf-8")
