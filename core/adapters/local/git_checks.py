"""The application's checks of a commit (pytest on a checkout), run in the background.

The checks are the application's code: pytest runs with an environment built
from an allowlist (`core.isolation.child_env`: no credentials of mmm's), dies
with the process that started it, and works in a checkout under the scratch
folder given at construction (the workspace's), not the system's temporary
folder. `checks()` never waits for them: the first call starts one run per
commit in a background thread, which holds an advisory lock (flock) on the
run's folder while it works and writes the result there when done; any
process asking meanwhile gets None. A run whose process died (its lock
released, no result) is started again by the next call.

The tests have no credentials, so an artifact that a descriptor (`deploy/*/*.yaml`) names
in a remote store (`s3://...`) is fetched by the runner through the artifact store given
at construction (into its cache), only from that store's own staging and production
buckets; the tests find the copies in MMM_ARTIFACT_PATHS (a JSON object, URI -> path).
The model of a descriptor whose golden data is checked on the endpoint (`golden_on:
endpoint`) is not fetched: its test is skipped. A skipped test passes the checks, as in any
pytest run; a run that collects no test at all passes too ("no checks").
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import yaml

from core.adapters.local.git_repo import GitRepo, last_line, one_line
from core.isolation import child_env, die_with_parent
from core.layout import DESCRIPTORS
from core.ports import ArtifactStore, CheckResult, PortError, TransientError

__all__ = ["ARTIFACT_PATHS_ENV", "ChecksRunner"]

ARTIFACT_PATHS_ENV = "MMM_ARTIFACT_PATHS"  # read by the generated golden tests
_MODEL_BUCKETS = frozenset({"staging", "production"})  # what the runner fetches from
_DESCRIPTOR_MAX = 1 << 20  # bytes: mmm writes a few hundred; a larger file is not read


def _tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"[{len(text) - limit} characters cut]\n{text[-limit:]}"


class ChecksRunner:
    """The checks of each commit of `repo`: one run per commit, its lock and result in `runs`."""

    def __init__(
        self,
        repo: GitRepo,
        runs: Path,
        *,
        check_timeout_s: float,
        output_limit: int,
        python: str,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        self.repo = repo
        self.runs = runs
        self.check_timeout_s = check_timeout_s
        self.output_limit = output_limit
        self.python = python
        self.artifacts = artifacts

    def checks(self, head: str) -> CheckResult | None:
        """The result of `head`'s checks, or None while they run (started when not yet)."""
        run = self.runs / head
        done = self._result(run)
        if done is not None:
            return done
        run.mkdir(parents=True, exist_ok=True)
        fd = os.open(run / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # running, in this process or another
            os.close(fd)
            return None
        done = self._result(run)  # finished between the first look and the lock
        if done is not None:
            os.close(fd)
            return done
        threading.Thread(
            target=self._run_checks, args=(head, run, fd), name=f"checks-{head[:8]}", daemon=True
        ).start()
        return None

    def _result(self, run: Path) -> CheckResult | None:
        try:
            return CheckResult.model_validate_json((run / "result.json").read_text())
        except FileNotFoundError:
            return None

    def _run_checks(self, head: str, run: Path, fd: int) -> None:
        """In the background, holding the run's lock (`fd`) until the result is written."""
        try:
            try:
                result = self.check(head)
            except TransientError:
                return  # no result kept: the next call starts the checks again
            except PortError as exc:
                result = CheckResult(passed=False, summary=f"checks could not run: {exc}")
            tmp = run / f"result.{os.getpid()}.tmp"
            tmp.write_text(result.model_dump_json())
            tmp.replace(run / "result.json")  # all or nothing: a reader never sees half
        finally:
            os.close(fd)

    def check(self, head: str) -> CheckResult:
        """The checks of `head`, run now and waited for: a checkout of it, then pytest."""
        with self.repo.tempdir("checks-") as tmp:
            work = Path(tmp) / "repo"
            work.mkdir()
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.repo.git("read-tree", head, env=index, work_tree=work)
            self.repo.git("checkout-index", "--all", "--force", env=index, work_tree=work)
            if not (work / "tests" / "mmm").is_dir():
                return CheckResult(passed=True, summary="no checks")
            return self._pytest(work, self._fetched(work))

    def _fetched(self, work: Path) -> dict[str, str]:
        """Local copies of the remote artifacts the checkout's descriptors name (URI -> path).
        One that cannot be fetched is left out: its test says which URI it could not read."""
        if self.artifacts is None:
            return {}
        from core.codegen.render import GOLDEN_ON_ENDPOINT

        copies: dict[str, str] = {}
        for path in sorted((work / DESCRIPTORS).glob("*/*.yaml")):
            try:
                if not path.is_file() or path.stat().st_size > _DESCRIPTOR_MAX:
                    continue
                doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
                continue  # the application's file: its own tests judge it
            model = doc.get("model") if isinstance(doc, dict) else None
            verification = doc.get("verification") if isinstance(doc, dict) else None
            if isinstance(verification, dict) and verification.get("golden_on") == (
                GOLDEN_ON_ENDPOINT
            ):
                continue  # its test is skipped: no model folder of many GB fetched for nothing
            uri = model.get("artifact_uri") if isinstance(model, dict) else None
            if not isinstance(uri, str) or uri in copies or "://" not in uri:
                continue
            located = self.artifacts.locate(uri)  # only mmm's own model buckets
            if located is None or located[0].split("/")[0] not in _MODEL_BUCKETS:
                continue
            try:
                copies[uri] = str(self.artifacts.local_path(uri))
            except TransientError:
                raise  # no result kept: the checks start again later
            except PortError:
                continue
        return copies

    def _check_env(self, fetched: dict[str, str]) -> dict[str, str]:
        # The application's code sees no credentials, nor the caller's pytest settings
        # (PYTEST_* is not on the allowlist); mmm's runtime imports (mmm's root on PYTHONPATH).
        # Unbuffered: a run cut at the timeout still shows what it printed.
        extra = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        if fetched:
            extra[ARTIFACT_PATHS_ENV] = json.dumps(fetched, sort_keys=True)
        return child_env(extra)

    def _pytest(self, work: Path, fetched: dict[str, str]) -> CheckResult:
        cmd = [self.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/mmm"]
        proc = subprocess.Popen(
            cmd,
            cwd=work,
            env=self._check_env(fetched),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # a timeout ends the whole group, children included
            preexec_fn=die_with_parent,  # and a killed worker takes pytest with it
        )
        try:
            output, _ = proc.communicate(timeout=self.check_timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            return CheckResult(
                passed=False,
                summary=f"checks timed out after {self.check_timeout_s:g} s",
                output=_tail(output or "", self.output_limit),
            )
        if proc.returncode == 5:  # pytest: no tests collected
            return CheckResult(passed=True, summary="no checks", output=_tail(output, 2000))
        summary = last_line(output).strip("= ")
        if proc.returncode != 0:
            # Name the first failure: the summary is what people read in the deployment's events.
            failed = re.search(r"^(?:FAILED|ERROR) (.+)$", output, re.M)
            if failed:
                summary = f"{summary}: {failed.group(1)}"
            summary = one_line(summary)[:300] or f"pytest exited with {proc.returncode}"
        return CheckResult(
            passed=proc.returncode == 0,
            summary=summary,
            output=_tail(output, self.output_limit),
        )
