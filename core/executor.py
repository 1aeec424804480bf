"""Carries out one command through the ports. Every handler is idempotent.

Handlers compute what to change from the deployment's context, which the
worker saved before running the command, so a handler run again after a crash
computes the same change and the same "previous" state to undo to.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.checks import check_endpoint, fetch_checked
from core.domain import (
    Command,
    Deployment,
    EndpointFact,
    Kind,
    ModelVersion,
    StepProgress,
    VersionStatus,
    iso,
    known,
)
from core.events import AnalysisDone
from core.layout import (
    ALARM_PREFIX,
    artifact_key,
    artifact_prefix,
    descriptor_path,
    parse_alarm_name,
    variant_name,
)
from core.plan import Action
from core.ports import Change, EndpointConfig, InvalidInput, PortError, Ports, Variant
from core.spec import Alarms, Replay, Shadow
from core.store import Store
from core.traffic import (
    add_variant,
    drain_to,
    live_weight,
    remove_versions,
    revert,
    shift,
    with_shadow,
    without_shadow,
)
from core.usage import code_sites
from core.workspace import Workspace


@dataclass(frozen=True)
class Done:
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NotYet:
    until: datetime
    progress: StepProgress | None = None


Outcome = Done | NotYet
Handler = Callable[[Deployment, Command], Outcome]

EndpointEntry = EndpointFact


def _load(raw: dict[str, Any] | None) -> EndpointConfig | None:
    return EndpointConfig.model_validate(raw) if raw else None


def _dump(config: EndpointConfig | None) -> dict[str, Any] | None:
    return config.model_dump(mode="json") if config else None


def _config(entry: EndpointEntry) -> EndpointConfig | None:
    return _load(entry.get("config"))


def _entry(name: str, region: str, config: EndpointConfig | None) -> EndpointEntry:
    return {"name": name, "region": region, "config": _dump(config)}


class Executor:
    def __init__(
        self, ws: Workspace, ports: Ports, store: Store, clock: Callable[[], datetime]
    ) -> None:
        self.ws = ws
        self.ports = ports
        self.store = store
        self.clock = clock
        self.handlers: dict[Action, Handler] = {
            Action.VALIDATE: self._validate,
            Action.OPEN_CHANGE: self._open_change,
            Action.RUN_CHECKS: self._run_checks,
            Action.MERGE_CHANGE: self._merge_change,
            Action.COPY_ARTIFACT: self._copy_artifact,
            Action.SET_STATUS: self._set_status,
            Action.CREATE_VARIANT: self._endpoint_step,
            Action.SHIFT_TRAFFIC: self._endpoint_step,
            Action.START_SHADOW: self._endpoint_step,
            Action.STOP_SHADOW: self._endpoint_step,
            Action.DRAIN_OLD: self._endpoint_step,
            Action.REMOVE_TRAFFIC: self._endpoint_step,
            Action.CREATE_ALARMS: self._create_alarms,
            Action.BAKE: self._bake,
            Action.COLLECT: self._collect,
            Action.ANALYZE: self._analyze,
            Action.SCAN_USAGE: self._scan_usage,
            Action.REMOVE_ALARMS: self._remove_alarms,
            Action.REMOVE_CODE: self._remove_code,
            Action.TRASH_ARTIFACTS: self._trash_artifacts,
            Action.PURGE_TRASH: self._purge_trash,
            Action.REVERT_CHANGE: self._revert_change,
            Action.DELETE_ARTIFACT: self._delete_artifact,
            Action.RESTORE_ENDPOINTS: self._restore_endpoints,
            Action.DELETE_ALARMS: self._delete_alarms,
            Action.RESTORE_ALARMS: self._restore_alarms,
            Action.RESTORE_ARTIFACTS: self._restore_artifacts,
        }

    def run(self, d: Deployment, cmd: Command) -> Outcome:
        """Carry out `cmd`; raises PortError (TransientError to be retried)."""
        return self.handlers[Action(cmd.action)](d, cmd)

    # ------------------------------------------------------------ helpers

    def _mv(self, d: Deployment) -> ModelVersion:
        return self.ports.registry.get(d.model, d.version)

    def _versions(self, d: Deployment) -> list[int]:
        return d.context.versions or [d.version]

    def _candidate(self, d: Deployment) -> Variant:
        return Variant(
            name=variant_name(d.model, d.version),
            model=d.model,
            version=d.version,
            library=known(d.context.library, "library"),
            artifact=known(d.context.artifact_production, "artifact_production"),
            weight=0,
        )

    def _template(self, d: Deployment, region: str) -> EndpointConfig:
        spec = d.spec
        return EndpointConfig(
            name=d.endpoint,
            region=region,
            variants=[],
            instance_type=spec.instance.type,
            instance_count=spec.instance.count,
            env=dict(spec.env),
            invocation_timeout_ms=spec.timeouts.invocation_ms,
        )

    def _stage_key(self, d: Deployment, filename: str) -> str:
        return artifact_key(d.model, d.version, filename)

    # ------------------------------------------------------------ validate, code

    def _validate(self, d: Deployment, cmd: Command) -> Outcome:
        mv = self._mv(d)
        current = {r: self.ports.serving.get_endpoint(d.endpoint, r) for r in d.regions}
        check_endpoint(mv, d.endpoint, d.spec, current)
        facts: dict[str, Any] = {
            "library": mv.library.value,
            "sha256": mv.sha256,
            "statuses": {str(mv.version): mv.status.value},
            "endpoints": [_entry(d.endpoint, r, c) for r, c in current.items()],
        }
        self.ws.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="stage-", dir=self.ws.scratch) as tmp:
            artifact, golden, cases = fetch_checked(self.ports.registry, mv, Path(tmp))
            facts["artifact_staging"] = self.ports.artifacts.put(
                "staging", self._stage_key(d, artifact.name), artifact
            )
            if golden is not None:
                facts["golden_staging"] = self.ports.artifacts.put(
                    "staging", self._stage_key(d, "golden.jsonl"), golden
                )
        summary = f"{d.model} v{d.version} ({mv.library}) loads; {cases} golden cases"
        return Done({"facts": facts, "summary": summary})

    def _open_change(self, d: Deployment, cmd: Command) -> Outcome:
        from core.codegen.render import CodegenContext, render_change

        golden_uri = d.context.golden_staging
        golden = self.ports.artifacts.local_path(golden_uri).read_text() if golden_uri else None
        ctx = CodegenContext(
            endpoint=d.endpoint,
            model=d.model,
            version=d.version,
            library=known(d.context.library, "library"),
            artifact_uri=str(
                self.ports.artifacts.local_path(known(d.context.artifact_staging, "artifact"))
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

    def _run_checks(self, d: Deployment, cmd: Command) -> Outcome:
        res = self.ports.codehost.checks(self._change(d))
        if res is None:  # running: look again soon, without holding the worker meanwhile
            now = self.clock()
            return NotYet(self._look_again(), _since(self._started(d, cmd, now)))
        return Done({"passed": res.passed, "summary": res.summary})

    def _look_again(self) -> datetime:
        return self.clock() + timedelta(seconds=max(0.2, self.ws.settings.worker.poll_s))

    def _merge_change(self, d: Deployment, cmd: Command) -> Outcome:
        merged = self.ports.codehost.merge(self._change(d))
        dumped = merged.model_dump()
        return Done(
            {
                "change": dumped,
                "facts": {"change": dumped},
                "summary": f"merged {merged.merged_sha}",
            }
        )

    def _revert_change(self, d: Deployment, cmd: Command) -> Outcome:
        sha = self.ports.codehost.revert(Change.model_validate(cmd.args["change"]), d.requested_by)
        return Done({"summary": f"reverted ({sha})" if sha else "closed"})

    # ------------------------------------------------------------ artifacts, registry

    def _copy_artifact(self, d: Deployment, cmd: Command) -> Outcome:
        staging = known(d.context.artifact_staging, "artifact_staging")
        name = staging.rsplit("/", 1)[-1]
        uri = self.ports.artifacts.copy(staging, "production", self._stage_key(d, name))
        return Done(
            {"uri": uri, "created": True, "facts": {"artifact_production": uri}, "summary": uri}
        )

    def _referenced(self, uri: str) -> bool:
        for config in self.ports.serving.endpoints():
            variants = list(config.variants) + ([config.shadow.variant] if config.shadow else [])
            if any(v.artifact == uri for v in variants):
                return True
        return False

    def _delete_artifact(self, d: Deployment, cmd: Command) -> Outcome:
        # Another endpoint may serve the same version from the same file: keep it then.
        kept = [u for u in cmd.args["uris"] if self._referenced(u)]
        for uri in cmd.args["uris"]:
            if uri not in kept:
                self.ports.artifacts.delete(uri)
        return Done({"summary": f"kept {len(kept)} still in use" if kept else "deleted"})

    def _set_status(self, d: Deployment, cmd: Command) -> Outcome:
        before = dict(d.context.statuses)
        if "statuses" in cmd.args:  # an undo: put back what was there
            wanted = {k: str(v) for k, v in cmd.args["statuses"].items()}
        else:
            wanted = {str(v): cmd.args["status"] for v in self._versions(d)}
            if cmd.args["status"] == VersionStatus.PRODUCTION.value:
                # the versions it replaced serve nowhere now: archived until retired
                wanted |= {str(v): VersionStatus.ARCHIVED.value for v in d.context.drained}
        for version, status in wanted.items():
            self.ports.registry.set_status(
                d.model, int(version), VersionStatus(status), d.requested_by
            )
        previous = {v: before[v] for v in wanted if before.get(v) and before[v] != wanted[v]}
        statuses = {**before, **wanted}
        summary = ", ".join(f"v{v} {s}" for v, s in wanted.items())
        return Done({"previous": previous, "facts": {"statuses": statuses}, "summary": summary})

    # ------------------------------------------------------------ endpoints

    def _desired(
        self, d: Deployment, action: Action, args: dict[str, Any], entry: EndpointEntry
    ) -> EndpointConfig | None:
        config = _config(entry)
        name = variant_name(d.model, d.version)
        if action is Action.CREATE_VARIANT:
            return add_variant(config, self._candidate(d), self._template(d, entry["region"]))
        if config is None:
            raise PortError(f"endpoint {entry['name']} ({entry['region']}) does not exist")
        if action is Action.REMOVE_TRAFFIC:
            return remove_versions(config, {variant_name(d.model, v) for v in self._versions(d)})
        if action is Action.SHIFT_TRAFFIC:
            return shift(config, name, float(args["percent"]))
        if action is Action.START_SHADOW:
            assert isinstance(d.spec.strategy, Shadow)
            return with_shadow(config, name, d.spec.strategy.sample_percent)
        if action is Action.STOP_SHADOW:
            return without_shadow(config)
        if action is Action.DRAIN_OLD:
            return drain_to(config, name)
        raise ValueError(f"{action} does not change endpoints")

    def _endpoint_changes(self, d: Deployment, cmd: Command) -> dict[str, Any]:
        """What the step reads live and what it will write, per endpoint it targets."""
        action = Action(cmd.action)
        entries = []
        for target in d.context.endpoints:
            name, region = target["name"], target["region"]
            read = _entry(name, region, self.ports.serving.get_endpoint(name, region))
            wrote = _dump(self._desired(d, action, cmd.args, read))
            entries.append({"name": name, "region": region, "read": read["config"], "wrote": wrote})
        return {"entries": entries}

    def _endpoint_step(self, d: Deployment, cmd: Command) -> Outcome:
        action = Action(cmd.action)
        if action is Action.START_SHADOW:
            self._clear_captures(d)  # pairs of an earlier shadow test would count again
        # The live configs are read on the first run only; a run again after a crash applies
        # what that run decided (kept in the store), so it makes the same change.
        remembered = self.store.remember(cmd.key, d.id, lambda: self._endpoint_changes(d, cmd))
        entries: list[dict[str, Any]] = remembered["entries"]
        changes = [e for e in entries if e["read"] != e["wrote"]]
        for e in changes:
            if e["wrote"] is None:
                self.ports.serving.delete(e["name"], e["region"])
            else:
                self.ports.serving.apply(EndpointConfig.model_validate(e["wrote"]))
        after = [_entry(e["name"], e["region"], _load(e["wrote"])) for e in entries]
        facts: dict[str, Any] = {"endpoints": after}
        if action is Action.DRAIN_OLD:
            read = [_entry(e["name"], e["region"], _load(e["read"])) for e in entries]
            facts.update(self._drained(d, read))
        return Done({"changes": changes, "facts": facts, "summary": _weights_summary(after)})

    def _drained(self, d: Deployment, before: list[EndpointEntry]) -> dict[str, Any]:
        """Versions of this model that drain_old took off their last endpoint, with their
        registry status now (the finalize step archives them; undo puts the status back)."""
        versions = set()
        for entry in before:
            config = _config(entry)
            for v in config.variants if config else []:
                if v.model == d.model and v.version != d.version:
                    versions.add(v.version)
        still_serving = {
            v.version
            for config in self.ports.serving.endpoints()
            for v in config.variants
            if v.model == d.model and v.weight > 0
        }
        drained = sorted(versions - still_serving)
        statuses = dict(d.context.statuses)
        for version in drained:
            statuses[str(version)] = self.ports.registry.get(d.model, version).status.value
        return {"drained": drained, "statuses": statuses}

    def _restore_endpoints(self, d: Deployment, cmd: Command) -> Outcome:
        # Only what this deployment's step changed goes back, on top of the config as it is
        # now: a change made since by someone else (another variant, another weight) stays.
        for change in cmd.args["changes"]:
            live = self.ports.serving.get_endpoint(change["name"], change["region"])
            restored = revert(live, _load(change["read"]), _load(change["wrote"]))
            if restored == live:
                continue
            if restored is None:
                self.ports.serving.delete(change["name"], change["region"])
            else:
                self.ports.serving.apply(restored)
        return Done({"summary": f"restored {len(cmd.args['changes'])} endpoint(s)"})

    # ------------------------------------------------------------ alarms, bake

    def _create_alarms(self, d: Deployment, cmd: Command) -> Outcome:
        variant = variant_name(d.model, d.version)
        created = []
        for region in d.regions:
            names = self.ports.monitor.ensure_alarms(d.endpoint, region, variant, d.spec.alarms)
            created.append(
                {
                    "endpoint": d.endpoint,
                    "region": region,
                    "variant": variant,
                    "names": names,
                    "thresholds": d.spec.alarms.model_dump(),
                }
            )
        return Done(
            {
                "alarms": created,
                "facts": {"alarms": created},
                "summary": f"{sum(len(a['names']) for a in created)} alarms",
            }
        )

    def _delete_alarms(self, d: Deployment, cmd: Command) -> Outcome:
        for entry in cmd.args["alarms"]:
            self.ports.monitor.delete_alarms(entry["names"], entry["region"])
        return Done({"summary": "alarms deleted"})

    def _restore_alarms(self, d: Deployment, cmd: Command) -> Outcome:
        for entry in cmd.args["alarms"]:
            self.ports.monitor.ensure_alarms(
                entry["endpoint"], entry["region"], entry["variant"], Alarms(**entry["thresholds"])
            )
        return Done({"summary": "alarms restored"})

    def _started(self, d: Deployment, cmd: Command, now: datetime) -> datetime:
        """When the long step `cmd` was first looked at (`now`, at the first look)."""
        progress = d.context.progress.get(cmd.key.split("/", 2)[-1])
        return datetime.fromisoformat(progress.started) if progress and progress.started else now

    def _bake(self, d: Deployment, cmd: Command) -> Outcome:
        now = self.clock()
        started = self._started(d, cmd, now)
        fired = []
        for entry in d.context.alarms:
            for state in self.ports.monitor.evaluate(
                entry["names"], entry["region"], since=started.timestamp()
            ):
                if state.firing:
                    fired.append(state.model_dump())
        if fired:
            return Done({"fired": fired, "summary": f"{len(fired)} alarm(s) fired"})
        seconds = float(cmd.args["seconds"])
        end = started + timedelta(seconds=seconds)
        if now >= end:
            return Done(
                {"fired": [], "summary": f"baked {seconds:g}s at {cmd.args['percent']}%, no alarm"}
            )
        poll = max(0.2, min(5.0, seconds / 20))
        return NotYet(min(end, now + timedelta(seconds=poll)), _since(started, seconds))

    # ------------------------------------------------------------ shadow

    def _shadow_variant(self, d: Deployment) -> str:
        return variant_name(d.model, d.version)

    def _clear_captures(self, d: Deployment) -> None:
        prefix = f"{d.endpoint}/{self._shadow_variant(d)}/"
        for uri in self.ports.artifacts.list("captures", prefix):
            self.ports.artifacts.delete(uri)

    def _pairs(self, d: Deployment) -> list[dict[str, Any]]:
        pairs: list[dict[str, Any]] = []
        for region in d.regions:
            pairs += [
                p.model_dump()
                for p in self.ports.serving.captured(d.endpoint, region, self._shadow_variant(d))
            ]
        return pairs

    def _collect(self, d: Deployment, cmd: Command) -> Outcome:
        strategy = d.spec.strategy
        assert isinstance(strategy, Shadow)
        if isinstance(strategy.traffic, Replay):
            self._clear_captures(d)  # run again after a crash, it replays once, not twice
            inputs = read_replay(Path(strategy.traffic.replay))
            for region in d.regions:
                self.ports.serving.replay(d.endpoint, region, inputs)
            samples = len(self._pairs(d))
            return Done({"samples": samples, "summary": f"{samples} paired predictions (replayed)"})
        now = self.clock()
        target = d.context.min_samples or strategy.min_samples
        samples = len(self._pairs(d))
        started = self._started(d, cmd, now)
        progress = _since(started, strategy.max_wait_s).model_copy(
            update={"samples": samples, "target": target}
        )
        if samples >= target or now >= started + timedelta(seconds=strategy.max_wait_s):
            return Done({"samples": samples, "summary": f"{samples} paired predictions"})
        return NotYet(max(now + timedelta(seconds=0.5), self._look_again()), progress)

    def _analyze(self, d: Deployment, cmd: Command) -> Outcome:
        from core.analysis import PairedSample, analyze, render_text

        records = self._pairs(d)
        if not records:
            verdict: dict[str, Any] = {
                "verdict": "inconclusive",
                "samples": 0,
                "summary": "no paired predictions were captured",
                "needed_samples": None,
            }
        else:
            try:
                sample = PairedSample.from_records(records)
            except ValueError as exc:
                raise InvalidInput(f"captured predictions cannot be analysed: {exc}") from None
            # Each new look at an inconclusive shadow spends less alpha (see docs/analysis.md).
            look = 1 + sum(1 for e in d.events if isinstance(e, AnalysisDone))
            result = analyze(sample, d.spec.analysis, look=look)
            verdict = result.to_public()
            verdict["text"] = render_text(sample, result)  # for terminals and chat
            verdict["report"] = self._report(d, sample, result)
        return Done(
            {"analysis": verdict, "summary": f"{verdict['verdict']} on {verdict['samples']} pairs"}
        )

    def _report(self, d: Deployment, sample: Any, result: Any) -> list[str]:
        """Charts of the analysis in the reports bucket; best effort, never fails the step."""
        try:
            from core.analysis import render_charts
        except ImportError:
            return []
        self.ws.scratch.mkdir(parents=True, exist_ok=True)
        uris = []
        with tempfile.TemporaryDirectory(prefix="report-", dir=self.ws.scratch) as tmp:
            try:
                paths = render_charts(sample, result, Path(tmp))
            except Exception:  # charts are a convenience: the verdict stands without them
                return []
            for path in paths:
                uris.append(self.ports.artifacts.put("reports", f"{d.id}/{path.name}", path))
        return uris

    # ------------------------------------------------------------ retirement

    def _scan_usage(self, d: Deployment, cmd: Command) -> Outcome:
        versions = self._versions(d)
        names = {variant_name(d.model, v) for v in versions}
        affected: list[EndpointEntry] = []
        live: list[str] = []
        for config in self.ports.serving.endpoints():
            mine = {v.name for v in config.variants} | (
                {config.shadow.variant.name} if config.shadow else set()
            )
            if mine & names:
                affected.append(_entry(config.name, config.region, config))
                weight = live_weight(config, names)
                if weight > 0:
                    live.append(f"{config.name} ({config.region}) at {weight:g}%")
        if live and not d.force:
            raise InvalidInput(
                f"{d.model} still takes live traffic on {', '.join(live)}; "
                "deploy another version there first, or retire with --force"
            )
        statuses = {str(v): self.ports.registry.get(d.model, v).status.value for v in versions}
        alarms = self._alarm_entries(d, versions)
        deletions = self._code_deletions(d, set(versions))
        uris = [
            uri
            for bucket in ("production", "staging")
            for v in versions
            for uri in self.ports.artifacts.list(bucket, artifact_prefix(d.model, v))
        ]
        facts = {
            "endpoints": affected,
            "statuses": statuses,
            "retire_alarms": alarms,
            "code_deletions": deletions,
            "artifact_uris": uris,
        }
        summary = (
            f"{len(affected)} endpoint(s), {sum(len(a['names']) for a in alarms)} alarm(s), "
            f"{len(deletions)} file(s), {len(uris)} artifact(s)"
        )
        return Done({"facts": facts, "summary": summary})

    def _alarm_entries(self, d: Deployment, versions: list[int]) -> list[dict[str, Any]]:
        """The alarms of the versions, with the thresholds they were made with (to restore them)."""
        existing = set(self.ports.monitor.alarms(ALARM_PREFIX))
        entries = []
        for past in self.store.recent(limit=10_000):
            if (
                past.kind is not Kind.DEPLOY
                or past.model != d.model
                or past.version not in versions
            ):
                continue
            for entry in past.context.alarms:
                names = [n for n in entry["names"] if n in existing]
                if names:
                    entries.append({**entry, "names": names})
                    existing -= set(names)
        for version in versions:  # alarms made outside any deployment mmm remembers
            variant = variant_name(d.model, version)
            orphans = sorted(
                n for n in existing if (p := parse_alarm_name(n)) and p.variant == variant
            )
            if orphans:
                entries.append(
                    {
                        "endpoint": "",
                        "region": "local",
                        "variant": variant,
                        "names": orphans,
                        "thresholds": Alarms().model_dump(),
                    }
                )
        return entries

    def _code_deletions(self, d: Deployment, versions: set[int]) -> list[str]:
        from core.codegen.render import managed_paths

        on_main = set(self.ports.codehost.files())
        paths: list[str] = []
        for site in code_sites(self.ports.codehost, d.model, versions):
            endpoint = str(site.detail["endpoint"])
            own = descriptor_path(endpoint, d.model)
            # The client and golden test are per endpoint: keep them while another model's
            # descriptor on that endpoint still needs them.
            shared = any(p.startswith(f"deploy/{endpoint}/") and p != own for p in on_main)
            wanted = [own] if shared else managed_paths(endpoint, d.model)
            paths += [p for p in wanted if p in on_main and p not in paths]
        return paths

    def _remove_alarms(self, d: Deployment, cmd: Command) -> Outcome:
        entries = d.context.retire_alarms
        for entry in entries:
            self.ports.monitor.delete_alarms(entry["names"], entry["region"])
        return Done({"removed": entries, "summary": f"{len(entries)} alarm set(s) removed"})

    def _remove_code(self, d: Deployment, cmd: Command) -> Outcome:
        deletions = d.context.code_deletions
        if not deletions:
            return Done({"summary": "no generated code on main"})
        change = self.ports.codehost.open_change(
            d.id, {}, deletions, f"Retire {d.model} ({', '.join(deletions)})", d.requested_by
        )
        checks = self.ports.codehost.checks(change)
        if checks is None:  # the change is reopened as it is on the next look: same head
            return NotYet(self._look_again())
        if not checks.passed:
            self.ports.codehost.revert(change, d.requested_by)
            raise PortError(f"checks fail once the generated code is removed: {checks.summary}")
        merged = self.ports.codehost.merge(change)
        return Done({"change": merged.model_dump(), "summary": f"removed {len(deletions)} file(s)"})

    def _trash_key(self, d: Deployment, uri: str) -> str:
        return f"{d.id}/{uri.split('://', 1)[-1]}"

    def _trash_artifacts(self, d: Deployment, cmd: Command) -> Outcome:
        # Moved, not deleted, until the retirement ends: an abort can put them back.
        moves = []
        for uri in d.context.artifact_uris:
            trash = self.ports.artifacts.uri("trash", self._trash_key(d, uri))
            if self.ports.artifacts.exists(uri):
                self.ports.artifacts.copy(uri, "trash", self._trash_key(d, uri))
                self.ports.artifacts.delete(uri)
            if self.ports.artifacts.exists(trash):
                moves.append({"from": uri, "to": trash})
        return Done({"moves": moves, "summary": f"{len(moves)} artifact(s) removed"})

    def _restore_artifacts(self, d: Deployment, cmd: Command) -> Outcome:
        for move in cmd.args["moves"]:
            if self.ports.artifacts.exists(move["to"]):
                bucket, key = move["from"].split("://", 1)[-1].split("/", 1)
                self.ports.artifacts.copy(move["to"], bucket, key)
                self.ports.artifacts.delete(move["to"])
        return Done({"summary": f"{len(cmd.args['moves'])} artifact(s) restored"})

    def _purge_trash(self, d: Deployment, cmd: Command) -> Outcome:
        gone = [
            self.ports.artifacts.delete(u) for u in self.ports.artifacts.list("trash", f"{d.id}/")
        ]
        return Done({"summary": f"purged {sum(gone)} file(s)"})


def _since(started: datetime, of_s: float | None = None) -> StepProgress:
    """A long step's progress: when it started (read back at the next look) and how long it
    lasts; a front end draws the bar from the two, so every look need not be news."""
    return StepProgress(started=iso(started), of_s=of_s)


def _weights_summary(entries: list[EndpointEntry]) -> str:
    parts = []
    for entry in entries:
        config = entry.get("config")
        if not config:
            parts.append(f"{entry['name']}: removed")
            continue
        weights = ", ".join(f"{v['name']} {v['weight']:g}%" for v in config["variants"])
        shadow = f"; shadow {config['shadow']['variant']['name']}" if config.get("shadow") else ""
        parts.append(f"{entry['name']}: {weights}{shadow}")
    return "; ".join(parts)


def read_replay(path: Path) -> list[Any]:
    """Inputs for a replayed shadow test: JSON Lines of feature vectors or {"input": ...}."""
    if not path.is_file():
        raise InvalidInput(f"{path}: replay file not found")
    inputs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}: line {number}: not JSON ({exc.msg})") from None
        if isinstance(item, dict):
            if "input" not in item:
                raise InvalidInput(
                    f"{path}: line {number}: expected a list or an object with 'input'"
                )
            item = item["input"]
        inputs.append(item)
    if not inputs:
        raise InvalidInput(f"{path}: replay file has no inputs")
    return inputs
