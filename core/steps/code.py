"""Steps on the consuming repository: open the change, run its checks, merge it, revert it."""

from __future__ import annotations

from core.domain import Command, Deployment, known
from core.ports import Change
from core.steps.base import Done, NotYet, Outcome, Steps, since


class CodeSteps(Steps):
    def open_change(self, d: Deployment, cmd: Command) -> Outcome:
        from core.codegen.render import CodegenContext, render_change

        golden_uri = d.context.golden_staging
        golden = self.ports.artifacts.local_path(golden_uri).read_text() if golden_uri else None
        ctx = CodegenContext(
            endpoint=d.endpoint,
            model=d.model,
            version=d.version,
            library=known(d.context.library, "library"),
            artifact_uri=self.ports.artifacts.code_uri(
                known(d.context.artifact_staging, "artifact")
            ),
            golden_cases_jsonl=golden,
            spec=d.spec,
            deployment_id=d.id,
            generated_at=d.created_at,
        )
        files, stale = render_change(ctx)
        on_main = set(self.ports.codehost.files())
        change = self.ports.codehost.open_change(
            d.id,
            files,
            [p for p in stale if p in on_main],  # e.g. a golden test the new version lacks
            f"Deploy {d.model} v{d.version} to {d.endpoint}",
            d.requested_by,
        )
        dumped = change.model_dump()
        return Done(
            {"change": dumped, "facts": {"change": dumped}, "summary": f"change {change.id}"}
        )

    def _change(self, d: Deployment) -> Change:
        return Change.model_validate(known(d.context.change, "change"))

    def run_checks(self, d: Deployment, cmd: Command) -> Outcome:
        res = self.ports.codehost.checks(self._change(d))
        if res is None:  # running: look again soon, without holding the worker meanwhile
            now = self.clock()
            return NotYet(self._look_again(), since(self._started(d, cmd, now)))
        return Done({"passed": res.passed, "summary": res.summary})

    def merge_change(self, d: Deployment, cmd: Command) -> Outcome:
        merged = self.ports.codehost.merge(self._change(d))
        dumped = merged.model_dump()
        return Done(
            {
                "change": dumped,
                "facts": {"change": dumped},
                "summary": f"merged {merged.merged_sha}",
            }
        )

    def revert_change(self, d: Deployment, cmd: Command) -> Outcome:
        """Undoes open_change, merge_change and retirement's remove_code."""
        sha = self.ports.codehost.revert(Change.model_validate(cmd.args["change"]), d.requested_by)
        return Done({"summary": f"reverted ({sha})" if sha else "closed"})
