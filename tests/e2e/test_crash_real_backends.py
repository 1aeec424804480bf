"""The crash matrix on the real adapters: worker processes SIGKILLed at the command boundaries
of a deployment through S3, SageMaker, CloudWatch and Application Auto Scaling (moto's server,
extended), the Comet registry and GitHub (local fakes of their REST APIs, reached by comet_ml
and PyGithub), with the Slack notifier posting the deployment's message to a fake Slack; each
resumes to exactly the end of the same deployment run without a kill.

For each strategy (all-at-once; blue-green in steps of 50 and 100 % with a 0.5 s bake after
each; shadow replaying 20 inputs, analysed, promoted all at once) the version before
(`1.0.0`, all at once, with autoscaling) serves and the candidate (`1.1.0`) is deployed.

- The reference: one `mmm worker --once` process carries the recorded candidate to its end
  (for all-at-once, the installed command does it too, to exactly the same end).
- The injection points come from the plan itself (core.machine.plan_of, gates aside): a new
  step is covered with no change here. For every command, right after it ran (its result
  not logged: the next worker runs it again: `after_run`) and right after its result is
  logged (the state that consumes it not saved: the next worker reads it back:
  `after_log`). A command that looks more than once in the uninterrupted run (the pull
  request's checks; every SageMaker change, Creating or Updating; a bake) is also killed
  right after its first look (`inside`: the change asked for and in flight) and, instead of
  a plain `after_run`, right after its last look (`done`, by count; not for a bake, whose
  count follows the clock).
- Each point is a case: from the state just before its command first ran, a worker process
  SIGKILLs itself there (`MMM_CRASH_AT`), a second one runs the deployment to its end, what
  is left of the change feed goes to Slack, and the end is compared with the reference's.
  The states before each command are saved whole (workspace, moto, fakes) while mmm's own
  Worker carries the candidate through in this process, and put back for each case.
- Also (blue-green): an abort after a kill inside the weights update of `shift:50`, against
  the same abort made without a kill; both leave S3, SageMaker, CloudWatch, autoscaling and
  Comet as they were before the candidate.

Covered: every point of every command of the plan, for the three strategies: all-at-once
26 (validate, open_change, run_checks, merge_change, copy_artifact, mark_staging,
create_variant, create_alarms, shift:100, drain_old, mark_production), blue-green 33 (the
same with shift:50, bake:50, shift:100 and bake:100 for the traffic), shadow 36 (the same
with start_shadow, collect, analyze, stop_shadow before shift:100), and the abort above: 96
cases.

Compared, after normalising deployment ids, commit SHAs, ports, times and durations
(tests.support.crash_world): the candidate's events, journal, analysis and usage index;
every S3 object with its hash (capture files counted per variant); SageMaker models, endpoint
configs, endpoints with their variants, weights and counts; alarms and dashboards; scalable
targets and policies; every commit ever made on the GitHub fake, its branches, pull requests
and files; Comet statuses and tags; Slack's messages and their thread replies. A reply
repeated right after itself is allowed once per kill (the notifier delivers at least once,
as documented). No scratch may be left in the workspace.

Not covered: a kill at a gate (nothing is pending there); inside collect or analyze (with
replayed traffic each finishes in one look; with live traffic collect looks on the clock);
the last look of a bake; inside open_change or merge_change, between their requests to
GitHub (one look each: no crash point inside); several regions; the boundaries of undo
commands other than those of the abort above; two workers at once (the lease's part,
tests/e2e/test_many_workers.py). The workers are forked from a server that has imported mmm
once (tests.support.crash_worker) and run `mmm_cli.main.main` with PyGithub's pauses between
requests off.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pytest

from core.plan import Action
from tests.support import crash_world as cw
from tests.support import moto_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

PROPERTY = "crash-matrix"  # the summary tests/conftest.py prints at the end of the run

# The strategy whose uninterrupted run is also made by the installed `mmm worker --once`
# (a new interpreter, PyGithub's pauses on): its end must be the forked worker's.
COMMAND = "all-at-once"

# Differences a kill leaves that are known defects, reported and not fixed here: the case
# must end with exactly these (a fix makes it fail until its entry goes).
KNOWN: dict[tuple[str, str], list[str]] = {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cw.Lab]:
    """The stand-ins, the workspace and the fork server of this process, with the process's
    environment pointing at them for what runs here (the deployment before the candidate,
    the run that saves the states, the notifier that delivers what a killed worker left)."""
    patch = pytest.MonkeyPatch()
    for name, value in moto_server.DUMMY_ENV.items():
        patch.setenv(name, value)
    from github import Consts

    patch.setattr(Consts, "DEFAULT_SECONDS_BETWEEN_REQUESTS", 0)
    patch.setattr(Consts, "DEFAULT_SECONDS_BETWEEN_WRITES", 0)
    lab = cw.Lab(tmp_path_factory.mktemp("crash-lab"))
    for name, value in lab.env().items():
        if name.startswith(("COMET_", "GITHUB_")):
            patch.setenv(name, value)
    try:
        yield lab
    finally:
        lab.close()
        patch.undo()


def run_case(
    lab: cw.Lab, t: cw.Template, ref: cw.Outcome, point: cw.Point, name: str, **kw: Any
) -> tuple[cw.Result, cw.Outcome | None]:
    started = time.monotonic()
    try:
        out = lab.crash(t, point, **kw)
    except AssertionError as exc:  # not killed where asked, a worker failed, scratch left
        failed = cw.Result(t.strategy, name, point.crash_at, False, time.monotonic() - started,
                           [f"run: {exc}"[:2000]])  # fmt: skip
        return failed, None
    diffs = cw.differences(ref.snapshot, out.snapshot)
    if out.repeated_replies > 1:  # one kill: at most one entry delivered twice
        diffs.append(f"/slack: {out.repeated_replies} thread replies posted twice in a row")
    known = KNOWN.get((t.strategy, name))
    result = cw.Result(
        t.strategy, name, point.crash_at, diffs == (known or []), out.seconds, diffs, out.runs
    )
    result.known = known is not None
    result.repeated_replies = out.repeated_replies
    return result, out


def abort_case(lab: cw.Lab, t: cw.Template) -> cw.Result:
    """An abort after a kill inside the weights update of the first traffic step, against
    the same abort made without a kill; both leave AWS and Comet as before the candidate."""
    shift = next(step for step, action in t.steps if action is Action.SHIFT_TRAFFIC)
    lab.ids = dict(t.ids)
    lab.restore(t.queued)
    before = lab.snapshot()
    lab.restore(t.before[shift])
    lab.abort()
    ref = lab.finish([lab.worker()], time.monotonic())
    point = cw.Point(shift, Action.SHIFT_TRAFFIC, "after_run", 1, "inside")
    name = f"abort after a kill at {point.name}"
    result, out = run_case(lab, t, ref, point, name, then=lab.abort)
    for who, outcome in (("without a kill", ref), ("after a kill", out)):
        if outcome is None:
            continue
        snap = outcome.snapshot
        problems = [] if outcome.state == "aborted" else [f"state {outcome.state}"]
        for system in ("sagemaker", "cloudwatch", "autoscaling", "comet"):
            problems += cw.differences(before[system], snap[system], f"/{system}")
        problems += cw.differences(before["s3"]["objects"], snap["s3"]["objects"], "/s3")
        if problems:
            result.same = False
            result.differences += [f"the abort {who}, against before the candidate: {p}"
                                   for p in problems]  # fmt: skip
    return result


# Longest first: pytest-xdist's work stealing then balances two or three processes.
@pytest.mark.parametrize("strategy", ["shadow", "blue-green", "all-at-once"])
def test_killed_workers_resume_to_the_end_of_the_uninterrupted_run(
    lab: cw.Lab, strategy: str, record_property: Any
) -> None:
    started, cpu = time.monotonic(), cw.cpu_seconds()
    t = lab.template(strategy)
    ref = lab.reference(t)
    assert ref.state == "succeeded", ref.runs
    assert ref.repeated_replies == 0, ref.snapshot["slack"]
    if strategy == COMMAND:
        by_command = lab.reference(t, command=True)
        diffs = cw.differences(ref.snapshot, by_command.snapshot)
        assert not diffs, ("`mmm worker --once` ends otherwise", diffs, by_command.runs)
    results = [run_case(lab, t, ref, p, p.name)[0] for p in t.points]
    if strategy == "blue-green":
        results.append(abort_case(lab, t))
    workers_cpu = sum(r["cpu_s"] for res in results for r in res.runs)
    summary = {
        "strategy": strategy,
        "plan_points": len(t.points),
        "cases": len(results),
        "same": sum(r.same and not r.known for r in results),
        "known": sum(r.same and r.known for r in results),
        "repeated_replies": sum(r.repeated_replies for r in results),
        "seconds": round(time.monotonic() - started),
        "cpu_seconds": round(cw.cpu_seconds() - cpu + workers_cpu),
        "reference_seconds": round(ref.seconds, 1),
        "failed": [f"{r.case} ({r.crash_at})" for r in results if not r.same],
    }
    record_property(PROPERTY, summary)
    failed = [r for r in results if not r.same]
    assert not failed, json.dumps([asdict(r) for r in failed], indent=1, default=str)[:20000]
