"""A small fake of GitHub's REST API (what PyGithub calls for pull requests), on 127.0.0.1,
for tests.

It takes real requests from the real client
(`Github(base_url=fake.api_url, auth=Auth.Token(...))`) and keeps real state: blobs,
trees, commits, branches, pull requests with their merges, and the commit statuses and
check runs of each head. It records every request, so a test asserts on what arrived and
what changed, not on mocks.

Checks play the part of the repository's workflow: when a pull request opens, the check
plan (`checks`, a `CheckPlan` or a function of the pull request giving one) decides what
its head reports: runs in progress for `pending_polls` reads, then their conclusion.
`fail(...)` and `rate_limit(...)` make the next requests answer an HTTP error, the way a
busy GitHub or an exhausted rate limit does.

    with FakeGitHub("acme/app", token="t") as gh:
        client = Github(base_url=gh.api_url, auth=Auth.Token("t"), retry=None,
                        seconds_between_requests=0, seconds_between_writes=0)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.support.http_fake import LocalHttpFake

API = "/api/v3"
_ISO = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class Request:
    method: str
    path: str  # without the API root
    params: dict[str, str]
    body: Any
    authorization: str | None


@dataclass
class Commit:
    sha: str
    tree: str
    parents: list[str]
    message: str
    date: str


@dataclass
class Pull:
    number: int
    title: str
    body: str
    head: str  # branch
    base: str
    head_sha: str
    base_sha: str  # the base branch's head when it opened: the merge base
    state: str = "open"
    merged: bool = False
    merge_sha: str | None = None


@dataclass
class CheckPlan:
    """What a head's checks report: `name` in progress for `pending_polls` reads, then done
    with `conclusion` (`success`, `failure`, ...). `status` adds a commit status too."""

    name: str = "mmm-golden"
    conclusion: str = "success"
    pending_polls: int = 0
    summary: str = ""
    status: str | None = None  # a commit status context, reported with the same verdict


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    message: str


@dataclass
class _Checks:
    plan: CheckPlan
    polls: int = 0


@dataclass
class FakeGitHub(LocalHttpFake):
    """The fake server for one repository `full_name`, with a first commit on `base`."""

    full_name: str = "acme/app"
    token: str | None = None
    base: str = "main"
    checks: CheckPlan | Callable[[Pull], CheckPlan | None] | None = field(default_factory=CheckPlan)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.blobs: dict[str, str] = {}
        self.trees: dict[str, dict[str, str]] = {}  # tree sha -> path -> blob sha
        self.commits: dict[str, Commit] = {}
        self.refs: dict[str, str] = {}  # branch -> commit sha
        self.pulls: dict[int, Pull] = {}
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self.runs: dict[str, _Checks] = {}
        self._failures: list[_Failure] = []
        self._server: ThreadingHTTPServer | None = None
        tree = self._tree({"README.md": self._blob("# app\n")})
        self.refs[self.base] = self._commit(tree, [], "Initial commit")

    # ------------------------------------------------------------ running

    @property
    def api_url(self) -> str:
        """What `github.base_url` (PyGithub's `base_url`) should be."""
        return self.root + API

    # ------------------------------------------------------------ state, for tests

    def files(self, ref: str | None = None) -> dict[str, str]:
        """Path -> text of every file on `ref` (a branch or commit; the base by default)."""
        with self._lock:
            sha = self.refs.get(ref or self.base, ref or "")
            tree = self.trees[self.commits[sha].tree]
            return {p: self.blobs[b] for p, b in tree.items()}

    def head(self, branch: str | None = None) -> str:
        with self._lock:
            return self.refs[branch or self.base]

    def log(self, branch: str | None = None) -> list[Commit]:
        """Commits on the first-parent line of `branch`, newest first."""
        with self._lock:
            out, sha = [], self.refs[branch or self.base]
            while sha:
                c = self.commits[sha]
                out.append(c)
                sha = c.parents[0] if c.parents else ""
            return out

    def commit_files(self, branch: str, files: dict[str, str], message: str) -> str:
        """A commit made outside mmm (a person pushing to `branch`)."""
        with self._lock:
            tree = dict(self.trees[self.commits[self.refs[branch]].tree])
            tree.update({p: self._blob(t) for p, t in files.items()})
            sha = self._commit(self._tree(tree), [self.refs[branch]], message)
            self.refs[branch] = sha
            return sha

    def set_status(self, sha: str, context: str, state: str, description: str = "") -> None:
        with self._lock:
            self.statuses.setdefault(sha, []).append(
                {"context": context, "state": state, "description": description}
            )

    def fail(
        self,
        method: str,
        path: str,
        status: int = 500,
        times: int = 1,
        headers: dict[str, str] | None = None,
        message: str = "Server Error",
    ) -> None:
        """The next `times` `method` requests whose path matches the regex `path` fail."""
        with self._lock:
            self._failures.append(
                _Failure(method, re.compile(path), status, times, headers or {}, message)
            )

    def rate_limit(
        self,
        reset_at: float | None = None,
        times: int = 1,
        method: str = ".*",
        *,
        status: int = 403,
        retry_after: int | None = None,
    ) -> None:
        """The next `times` requests hit a rate limit, as GitHub answers one: the primary
        limit exhausted (403, `X-RateLimit-Remaining: 0`, resetting at `reset_at`), or with
        `retry_after` a secondary limit (403 or 429 with `Retry-After` seconds)."""
        headers = {"X-RateLimit-Limit": "5000"}
        if reset_at is not None:
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(int(reset_at))
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
            message = (
                "You have exceeded a secondary rate limit. "
                "Please wait a few minutes before you try again."
            )
        else:
            message = "API rate limit exceeded for user ID 1."
        with self._lock:
            self._failures.append(
                _Failure(method, re.compile(".*"), status, times, headers, message)
            )

    def requests_to(self, method: str, path: str) -> list[Request]:
        """Recorded requests of `method` whose path matches the regex `path`."""
        with self._lock:
            return [r for r in self.requests if r.method == method and re.search(path, r.path)]

    def writes(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method != "GET"]

    def pull_of(self, branch: str) -> Pull | None:
        with self._lock:
            return next((p for p in self.pulls.values() if p.head == branch), None)

    # ------------------------------------------------------------ git objects

    @staticmethod
    def _sha(kind: str, text: str) -> str:
        return hashlib.sha1(f"{kind}\0{text}".encode()).hexdigest()

    def _blob(self, text: str) -> str:
        sha = self._sha("blob", text)
        self.blobs[sha] = text
        return sha

    def _tree(self, entries: dict[str, str]) -> str:
        sha = self._sha("tree", json.dumps(entries, sort_keys=True))
        self.trees[sha] = dict(entries)
        return sha

    def _commit(self, tree: str, parents: list[str], message: str) -> str:
        date = time.strftime(_ISO, time.gmtime())
        sha = self._sha("commit", json.dumps([tree, parents, message, date, len(self.commits)]))
        self.commits[sha] = Commit(sha, tree, list(parents), message, date)
        return sha

    # ------------------------------------------------------------ JSON of objects

    @property
    def _repo_url(self) -> str:
        return f"{self.api_url}/repos/{self.full_name}"

    def _repo_json(self) -> dict[str, Any]:
        owner, name = self.full_name.split("/")
        return {
            "id": 1,
            "name": name,
            "full_name": self.full_name,
            "owner": {"login": owner, "id": 1, "url": f"{self.api_url}/users/{owner}"},
            "url": self._repo_url,
            "html_url": f"{self.root}/{self.full_name}",
            "default_branch": self.base,
        }

    def _commit_json(self, sha: str) -> dict[str, Any]:
        c = self.commits[sha]
        person = {"name": "mmm", "email": "mmm@localhost", "date": c.date}
        return {
            "sha": sha,
            "url": f"{self._repo_url}/git/commits/{sha}",
            "html_url": f"{self.root}/{self.full_name}/commit/{sha}",
            "message": c.message,
            "author": person,
            "committer": person,
            "tree": {"sha": c.tree, "url": f"{self._repo_url}/git/trees/{c.tree}"},
            "parents": [{"sha": p, "url": f"{self._repo_url}/git/commits/{p}"} for p in c.parents],
        }

    def _ref_json(self, branch: str) -> dict[str, Any]:
        sha = self.refs[branch]
        return {
            "ref": f"refs/heads/{branch}",
            "url": f"{self._repo_url}/git/refs/heads/{branch}",
            "object": {"sha": sha, "type": "commit", "url": f"{self._repo_url}/git/commits/{sha}"},
        }

    def _tree_json(self, sha: str) -> dict[str, Any]:
        return {
            "sha": sha,
            "url": f"{self._repo_url}/git/trees/{sha}",
            "truncated": False,
            "tree": [
                {
                    "path": path,
                    "mode": "100644",
                    "type": "blob",
                    "sha": blob,
                    "size": len(self.blobs[blob]),
                    "url": f"{self._repo_url}/git/blobs/{blob}",
                }
                for path, blob in sorted(self.trees[sha].items())
            ],
        }

    def _pull_json(self, p: Pull) -> dict[str, Any]:
        def side(branch: str, sha: str) -> dict[str, Any]:
            return {
                "label": f"{self.full_name.split('/')[0]}:{branch}",
                "ref": branch,
                "sha": sha,
                "repo": self._repo_json(),
            }

        return {
            "id": p.number,
            "number": p.number,
            "url": f"{self._repo_url}/pulls/{p.number}",
            "html_url": f"{self.root}/{self.full_name}/pull/{p.number}",
            "state": p.state,
            "title": p.title,
            "body": p.body,
            "merged": p.merged,
            "merge_commit_sha": p.merge_sha,
            "head": side(p.head, p.head_sha),
            "base": side(p.base, p.base_sha),
        }

    # ------------------------------------------------------------ serving

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        path = unquote(url.path.removeprefix(API))
        params = dict(parse_qsl(url.query))
        auth = request.headers.get("Authorization")
        with self._lock:
            self.requests.append(Request(request.command, path, params, body, auth))
            failure = next(
                (
                    f
                    for f in self._failures
                    if re.fullmatch(f.method, request.command) and f.pattern.search(path)
                ),
                None,
            )
            if failure is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
        if failure is not None:
            self._send(request, failure.status, {"message": failure.message}, failure.headers)
            return
        if self.token is not None and auth != f"token {self.token}":
            self._send(request, 401, {"message": "Bad credentials"})
            return
        with self._lock:
            try:
                status, answer = self._route(request.command, path, params, body or {})
            except KeyError as exc:
                status, answer = 404, {"message": f"Not Found: {exc.args[0]}"}
        self._send(request, status, answer)

    def _route(self, method: str, path: str, params: dict[str, str], body: Any) -> tuple[int, Any]:
        prefix = f"/repos/{self.full_name}"
        if not path.startswith(prefix):
            return 404, {"message": "Not Found"}
        rest = path.removeprefix(prefix)
        key = f"{method} {rest}"
        if key == "GET ":
            return 200, self._repo_json()
        if m := re.fullmatch(r"GET /branches/(.+)", key):
            branch = m[1]
            sha = self.refs[branch]
            return 200, {
                "name": branch,
                "commit": {"sha": sha, "url": f"{self._repo_url}/commits/{sha}"},
                "protected": False,
            }
        if m := re.fullmatch(r"GET /git/ref/heads/(.+)", key):
            return 200, self._ref_json(m[1])
        if key == "POST /git/refs":
            branch = str(body["ref"]).removeprefix("refs/heads/")
            if branch in self.refs:
                return 422, {"message": "Reference already exists"}
            if body["sha"] not in self.commits:
                return 422, {"message": "Object does not exist"}
            self.refs[branch] = body["sha"]
            return 201, self._ref_json(branch)
        if m := re.fullmatch(r"PATCH /git/refs/heads/(.+)", key):
            if m[1] not in self.refs:
                raise KeyError(m[1])
            self.refs[m[1]] = body["sha"]
            return 200, self._ref_json(m[1])
        if m := re.fullmatch(r"DELETE /git/refs/heads/(.+)", key):
            if m[1] not in self.refs:
                return 422, {"message": "Reference does not exist"}
            del self.refs[m[1]]
            return 204, None
        if m := re.fullmatch(r"GET /git/commits/([0-9a-f]+)", key):
            return 200, self._commit_json(self.commits[m[1]].sha)
        if m := re.fullmatch(r"GET /commits/([^/]+)", key):
            sha = self.refs.get(m[1], m[1])
            data = self._commit_json(self.commits[sha].sha)
            return 200, {
                "sha": sha,
                "url": f"{self._repo_url}/commits/{sha}",
                "commit": data,
                "parents": data["parents"],
                "files": [],
            }
        if key == "POST /git/commits":
            if body["tree"] not in self.trees:
                raise KeyError(body["tree"])
            sha = self._commit(body["tree"], list(body.get("parents") or []), body["message"])
            return 201, self._commit_json(sha)
        if m := re.fullmatch(r"GET /git/trees/([0-9a-f]+)", key):
            if m[1] not in self.trees:
                raise KeyError(m[1])
            return 200, self._tree_json(m[1])
        if key == "POST /git/trees":
            base = body.get("base_tree")
            entries = dict(self.trees[base]) if base else {}
            for element in body["tree"]:
                if "content" in element:
                    entries[element["path"]] = self._blob(element["content"])
                elif element.get("sha") is None:
                    entries.pop(element["path"], None)
                else:
                    entries[element["path"]] = element["sha"]
            return 201, self._tree_json(self._tree(entries))
        if m := re.fullmatch(r"GET /contents/(.+)", key):
            ref = params.get("ref", self.base)
            sha = self.refs.get(ref, ref)
            tree = self.trees[self.commits[sha].tree]
            blob = tree[m[1]]
            return 200, {
                "type": "file",
                "encoding": "base64",
                "name": m[1].rsplit("/", 1)[-1],
                "path": m[1],
                "sha": blob,
                "size": len(self.blobs[blob]),
                "content": base64.b64encode(self.blobs[blob].encode()).decode(),
                "url": f"{self._repo_url}/contents/{m[1]}?ref={ref}",
            }
        if key == "GET /pulls":
            state = params.get("state", "open")
            head = params.get("head", "")
            pulls = [
                self._pull_json(p)
                for p in self.pulls.values()
                if (state == "all" or p.state == state)
                and (not head or f"{self.full_name.split('/')[0]}:{p.head}" == head)
            ]
            return 200, pulls
        if key == "POST /pulls":
            return self._open_pull(body)
        if m := re.fullmatch(r"GET /pulls/(\d+)", key):
            return 200, self._pull_json(self.pulls[int(m[1])])
        if m := re.fullmatch(r"PATCH /pulls/(\d+)", key):
            p = self.pulls[int(m[1])]
            if body.get("state") in ("open", "closed") and not p.merged:
                p.state = body["state"]
            return 200, self._pull_json(p)
        if m := re.fullmatch(r"PUT /pulls/(\d+)/merge", key):
            return self._merge(self.pulls[int(m[1])], body)
        if m := re.fullmatch(r"GET /commits/([^/]+)/status", key):
            return 200, self._combined_status(m[1])
        if m := re.fullmatch(r"GET /commits/([^/]+)/check-runs", key):
            return 200, self._check_runs(m[1])
        return 404, {"message": f"Not Found: {method} {rest}"}

    def _open_pull(self, body: dict[str, Any]) -> tuple[int, Any]:
        head, base = str(body["head"]).split(":")[-1], str(body["base"])
        if head not in self.refs or base not in self.refs:
            return 422, {"message": "Validation Failed", "errors": [{"field": "head"}]}
        if any(p.head == head and p.state == "open" for p in self.pulls.values()):
            return 422, {"message": "A pull request already exists"}
        number = len(self.pulls) + 1
        pull = Pull(
            number,
            str(body.get("title", "")),
            str(body.get("body") or ""),
            head,
            base,
            self.refs[head],
            self.refs[base],
        )
        self.pulls[number] = pull
        plan = self.checks(pull) if callable(self.checks) else self.checks
        if plan is not None:
            self.runs[pull.head_sha] = _Checks(plan)
        return 201, self._pull_json(pull)

    def _merge(self, p: Pull, body: dict[str, Any]) -> tuple[int, Any]:
        if p.merged:
            return 405, {"message": "Pull Request is not mergeable (already merged)"}
        if p.state != "open":
            return 405, {"message": "Pull Request is not mergeable (closed)"}
        if body.get("sha") and body["sha"] != p.head_sha:
            return 409, {"message": "Head branch was modified. Review and try the merge again."}
        old = self.trees[self.commits[p.base_sha].tree]
        new = self.trees[self.commits[p.head_sha].tree]
        entries = dict(self.trees[self.commits[self.refs[p.base]].tree])
        for path in set(old) | set(new):
            if old.get(path) != new.get(path):
                if path in new:
                    entries[path] = new[path]
                else:
                    entries.pop(path, None)
        message = str(body.get("commit_title") or f"Merge pull request #{p.number}")
        sha = self._commit(self._tree(entries), [self.refs[p.base], p.head_sha], message)
        self.refs[p.base] = sha
        p.merged, p.state, p.merge_sha = True, "closed", sha
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}

    def _verdict(self, sha: str) -> tuple[CheckPlan, bool] | None:
        """The plan of `sha`'s checks and whether they are done, counting this read."""
        checks = self.runs.get(sha)
        if checks is None:
            return None
        checks.polls += 1
        return checks.plan, checks.polls > checks.plan.pending_polls

    def _combined_status(self, ref: str) -> dict[str, Any]:
        sha = self.refs.get(ref, ref)
        statuses = list(self.statuses.get(sha, []))
        checks = self.runs.get(sha)
        if checks is not None and checks.plan.status is not None:
            done = checks.polls >= checks.plan.pending_polls
            verdict = "success" if checks.plan.conclusion == "success" else "failure"
            statuses.append(
                {"context": checks.plan.status, "state": verdict if done else "pending"}
            )
        states = [s["state"] for s in statuses]
        if any(s in ("failure", "error") for s in states):
            state = "failure"
        elif states and all(s == "success" for s in states):
            state = "success"
        else:
            state = "pending"
        return {
            "state": state,
            "sha": sha,
            "total_count": len(statuses),
            "statuses": [
                {
                    "id": i + 1,
                    "url": f"{self._repo_url}/statuses/{sha}",
                    "description": s.get("description", ""),
                    "target_url": None,
                    **{k: s[k] for k in ("context", "state")},
                }
                for i, s in enumerate(statuses)
            ],
            "repository": self._repo_json(),
            "commit_url": f"{self._repo_url}/commits/{sha}",
            "url": f"{self._repo_url}/commits/{sha}/status",
        }

    def _check_runs(self, ref: str) -> dict[str, Any]:
        sha = self.refs.get(ref, ref)
        verdict = self._verdict(sha)
        if verdict is None:
            return {"total_count": 0, "check_runs": []}
        plan, done = verdict
        run = {
            "id": 1,
            "name": plan.name,
            "head_sha": sha,
            "status": "completed" if done else "in_progress",
            "conclusion": plan.conclusion if done else None,
            "url": f"{self._repo_url}/check-runs/1",
            "html_url": f"{self.root}/{self.full_name}/runs/1",
            "output": {"title": plan.name, "summary": plan.summary if done else ""},
        }
        return {"total_count": 1, "check_runs": [run]}

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(data)
