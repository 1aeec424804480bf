"""The consuming application's repository as a local git repository (the embedded CodeHost).

The repository is bare, like a hosted one: nothing is checked out in it, so a
crash can never leave a half-written work tree behind. Every write goes
through git's plumbing (objects first, then one compare-and-swap of a ref):

- a change is one commit on the branch `mmm/<change id>`, on top of `main`;
- a merge is a `--no-ff` merge commit on `main`, made with
  `merge-tree --write-tree` and `commit-tree`;
- a revert is one commit on `main` that undoes the change's merge.

To read the code, clone it (`git clone <folder> app`). A folder that is not a
repository yet is created bare, with an initial commit on `main`. An existing
non-bare repository works too, but its checked-out branch is not updated (as
with a push into it).

Each operation is idempotent, keyed by the change id carried in commit
trailers: the change and its merge carry `Mmm-Change: <id>`, the revert
`Mmm-Revert: <id>`. Git runs with its own identity and without the system or
the user's configuration, so the result does not depend on HOME. Needs git
2.38 or later (`merge-tree --write-tree`).

The git plumbing is `core.adapters.local.git_repo`'s; the checks
(`core.adapters.local.git_checks`) are the application's code: pytest runs
without mmm's credentials, in the background, one run per commit.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from core.adapters.local.git_checks import ChecksRunner
from core.adapters.local.git_repo import (
    CHANGE_TRAILER,
    MAIN,
    MMM_AUTHOR,
    REVERT_TRAILER,
    CommitInfo,
    GitRepo,
)
from core.ports import (
    ArtifactStore,
    Change,
    CheckResult,
    InvalidInput,
    PortError,
    TransientError,
)

__all__ = ["CHANGE_TRAILER", "REVERT_TRAILER", "CommitInfo", "LocalGitCodeHost"]

BRANCH_PREFIX = "mmm/"
_CHANGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_ATTEMPTS = 5  # compare-and-swap retries when another writer moves a ref meanwhile


def _check_path(path: str) -> str:
    bad = (
        not path
        or any(c in path for c in "\\\n\r\0")
        # "", "." and ".." also catch absolute paths, doubled and trailing slashes
        or any(part in ("", ".", "..", ".git") for part in path.split("/"))
    )
    if bad:
        raise InvalidInput(f"{path!r}: not a plain path relative to the repository root")
    return path


class LocalGitCodeHost:
    """`core.ports.CodeHost` on a git repository in a local folder (bare, created when missing)."""

    def __init__(
        self,
        path: Path,
        *,
        check_timeout_s: float = 600.0,
        output_limit: int = 20_000,
        python: str | None = None,
        git_timeout_s: float = 60.0,
        scratch: Path | Callable[[], Path] | None = None,
        runs: Path | None = None,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        """`scratch`: the folder (or a function giving it, asked at each use) where checks
        check out the change and indexes are built; None: the system's temporary folder.
        `runs`: where the checks of each commit keep their lock and result (default: a
        folder beside the repository's). `artifacts`: the store the checks fetch remote
        artifacts from (S3), for golden tests that run without credentials."""
        self.path = Path(path).resolve()
        self.runs = (
            Path(runs) if runs is not None else self.path.with_name(f"{self.path.name}.checks")
        )
        self._repo = GitRepo(self.path, git_timeout_s=git_timeout_s, scratch=scratch)
        self._checks = ChecksRunner(
            self._repo,
            self.runs,
            check_timeout_s=check_timeout_s,
            output_limit=output_limit,
            python=python or sys.executable,
            artifacts=artifacts,
        )

    # ------------------------------------------------------------ CodeHost

    def open_change(
        self, change_id: str, files: dict[str, str], deletions: list[str], title: str, author: str
    ) -> Change:
        self._repo.ensure()
        branch = self._branch(change_id)
        for path in [*files, *deletions]:
            _check_path(path)
        for _ in range(_ATTEMPTS):
            merge = self._find(CHANGE_TRAILER, change_id, merges=True)
            head = self._repo.rev(branch)
            if merge is not None:  # done already: nothing left to open
                return self._change(change_id, head or merge.parents[1], merge.sha)
            if head is not None:
                base = self._repo.rev(f"{head}^")
                if base is not None and self._repo.tree_of(head) == self._repo.build_tree(
                    base, files, deletions
                ):
                    return self._change(change_id, head, None)
            main = self._repo.main()
            tree = self._repo.build_tree(main, files, deletions)
            message = self._repo.message(
                title or f"Change {change_id}", {CHANGE_TRAILER: change_id}
            )
            commit = self._repo.commit(tree, [main], message, author)
            if self._repo.swap_ref(branch, commit, head):
                return self._change(change_id, commit, None)
        raise TransientError(f"change {change_id}: its branch kept moving; try again")

    def checks(self, change: Change) -> CheckResult | None:
        self._repo.ensure()
        head = self._repo.existing(change.head, f"change {change.id}")
        return self._checks.checks(head)

    def run_checks(self, change: Change) -> CheckResult:
        """The checks of `change`, waited for (for scripts and tests; workers poll `checks`)."""
        self._repo.ensure()
        return self._checks.check(self._repo.existing(change.head, f"change {change.id}"))

    def merge(self, change: Change) -> Change:
        self._repo.ensure()
        self._branch(change.id)
        for _ in range(_ATTEMPTS):
            merge = self._find(CHANGE_TRAILER, change.id, merges=True)
            if merge is not None:
                return change.model_copy(update={"merged_sha": merge.sha})
            head = self._repo.existing(change.head, f"change {change.id}")
            main = self._repo.main()
            if self._repo.is_ancestor(head, main):  # merged by other means (a fast-forward by hand)
                return change.model_copy(update={"merged_sha": self._brought_in_by(head, main)})
            tree = self._repo.merge_trees(main, head, f"merging change {change.id} into main")
            subject = self._repo.git("log", "-1", "--format=%s", head).strip()
            message = self._repo.message(
                f"Merge change {change.id}: {subject}", {CHANGE_TRAILER: change.id}
            )
            commit = self._repo.commit(tree, [main, head], message, MMM_AUTHOR)
            if self._repo.swap_ref(MAIN, commit, main):
                return change.model_copy(update={"merged_sha": commit})
        raise TransientError(f"change {change.id}: main kept moving while merging; try again")

    def revert(self, change: Change, author: str) -> str | None:
        self._repo.ensure()
        branch = self._branch(change.id)
        for _ in range(_ATTEMPTS):
            done = self._find(REVERT_TRAILER, change.id, merges=False)
            if done is not None:
                return done.sha
            main = self._repo.main()
            merged = self._merged_commit(change, main)
            if merged is None:
                # Never merged: closing the change is deleting its branch.
                head = self._repo.rev(branch)
                if head is not None:
                    self._repo.run("update-ref", "-d", branch, head, ok=(0, 1, 128))
                return None
            before = self._repo.rev(f"{merged}^")
            if before is None:
                raise PortError(f"change {change.id}: {merged} has no parent to revert to")
            # A child of the merge whose tree is main before it: merging that child into main
            # (with the merge as the base) applies "merged -> before" on top of today's main.
            undo = self._repo.commit(self._repo.tree_of(before), [merged], "undo", MMM_AUTHOR)
            tree = self._repo.merge_trees(main, undo, f"reverting change {change.id} on main")
            subject = self._repo.git("log", "-1", "--format=%s", merged).strip()
            message = self._repo.message(
                f"Revert change {change.id}",
                {REVERT_TRAILER: change.id},
                body=f"This reverts {merged} ({subject}).",
            )
            commit = self._repo.commit(tree, [main], message, author)
            if self._repo.swap_ref(MAIN, commit, main):
                return commit
        raise TransientError(f"change {change.id}: main kept moving while reverting; try again")

    def files(self, prefix: str = "") -> list[str]:
        self._repo.ensure()
        out = self._repo.git("ls-tree", "-r", "-z", "--name-only", MAIN)
        return sorted(p for p in out.split("\0") if p and p.startswith(prefix))

    def read(self, path: str, ref: str = "main") -> str | None:
        """The text of `path` on `ref` (main unless told), or None when it is not there."""
        self._repo.ensure()
        proc = self._repo.run("cat-file", "blob", f"{ref}:{_check_path(path)}", ok=(0, 128))
        return proc.stdout if proc.returncode == 0 else None

    # ------------------------------------------------------------ reading, for people and tests

    def log(self, n: int = 20, ref: str = "main") -> list[CommitInfo]:
        """The last `n` commits on `ref`'s first-parent line, newest first."""
        self._repo.ensure()
        return self._repo.commits(ref, "--first-parent", f"--max-count={n}")

    def branches(self) -> list[str]:
        """Names of the open change branches (`mmm/<change id>`)."""
        self._repo.ensure()
        out = self._repo.git(
            "for-each-ref", "--format=%(refname:short)", f"refs/heads/{BRANCH_PREFIX}"
        )
        return sorted(out.split())

    # ------------------------------------------------------------ changes and branches

    def _branch(self, change_id: str) -> str:
        if not _CHANGE_ID.match(change_id) or ".." in change_id or change_id.endswith(".lock"):
            raise InvalidInput(
                f"change id {change_id!r}: use letters, digits, '.', '_' and '-' (a branch name)"
            )
        return f"refs/heads/{BRANCH_PREFIX}{change_id}"

    def _change(self, change_id: str, head: str, merged: str | None) -> Change:
        url = f"{self.path.as_uri()}#{BRANCH_PREFIX}{change_id}"
        return Change(id=change_id, url=url, head=head, merged_sha=merged)

    def _find(self, trailer: str, change_id: str, *, merges: bool) -> CommitInfo | None:
        """The commit on main's first-parent line that carries `trailer: change_id`."""
        options = ["--first-parent", "--fixed-strings", f"--grep={trailer}: {change_id}"]
        if merges:
            options.append("--merges")
        for info in self._repo.commits(MAIN, *options):
            value = info.change if trailer == CHANGE_TRAILER else info.revert
            if value == change_id:
                return info
        return None

    def _merged_commit(self, change: Change, main: str) -> str | None:
        """The commit on main that brought the change in, or None when it never was merged."""
        merge = self._find(CHANGE_TRAILER, change.id, merges=True)
        if merge is not None:
            return merge.sha
        for known in (change.merged_sha, change.head):
            commit = self._repo.rev(known) if known else None
            if commit is not None and self._repo.is_ancestor(commit, main):
                return self._brought_in_by(commit, main)
        return None

    def _brought_in_by(self, commit: str, main: str) -> str:
        """The oldest commit on main's first-parent line that contains `commit`."""
        descendants = set(
            self._repo.git("rev-list", "--ancestry-path", f"{commit}..{main}").split()
        )
        descendants.add(commit)
        line = self._repo.git("rev-list", "--first-parent", main).split()
        containing = [c for c in line if c in descendants]
        return containing[-1] if containing else main
