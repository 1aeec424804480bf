"""Steps on the serving endpoints: create the variant, shift traffic, start and stop the
shadow, drain the old variants, remove traffic; and restore what they changed, to undo."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.domain import Command, Deployment, known
from core.layout import variant_name
from core.plan import Action
from core.ports import EndpointConfig, PortError, Variant
from core.spec import DeploymentSpec, Shadow
from core.steps.base import (
    Done,
    EndpointEntry,
    NotYet,
    Outcome,
    Steps,
    dump_config,
    endpoint_entry,
    entry_config,
    load_config,
    since,
)
from core.steps.shadow import clear_captures
from core.traffic import (
    add_variant,
    drain_to,
    remove_versions,
    revert,
    shift,
    with_shadow,
    without_shadow,
)


class EndpointSteps(Steps):
    def _candidate(self, d: Deployment) -> Variant:
        return Variant(
            name=variant_name(d.model, d.version),
            model=d.model,
            version=d.version,
            library=known(d.context.library, "library"),
            artifact=known(d.context.artifact_production, "artifact_production"),
            weight=0,
        )

    def _desired(
        self, d: Deployment, action: Action, args: dict[str, Any], entry: EndpointEntry
    ) -> EndpointConfig | None:
        config = entry_config(entry)
        name = variant_name(d.model, d.version)
        if action is Action.CREATE_VARIANT:
            return add_variant(
                config, self._candidate(d), endpoint_template(d.spec, d.endpoint, entry["region"])
            )
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
        for target in _targets(d, cmd):
            name, region = target["name"], target["region"]
            read = endpoint_entry(name, region, self.ports.serving.get_endpoint(name, region))
            wrote = dump_config(self._desired(d, action, cmd.args, read))
            entries.append({"name": name, "region": region, "read": read["config"], "wrote": wrote})
        return {"entries": entries}

    def endpoint_step(self, d: Deployment, cmd: Command) -> Outcome:
        action = Action(cmd.action)
        if action is Action.START_SHADOW:
            clear_captures(self.ports, d)  # pairs of an earlier shadow test would count again
        # The live configs are read on the first run only; a run again after a crash applies
        # what that run decided (kept in the store), so it makes the same change.
        remembered = self.store.remember(cmd.key, d.id, lambda: self._endpoint_changes(d, cmd))
        entries: list[dict[str, Any]] = remembered["entries"]
        changes = [e for e in entries if e["read"] != e["wrote"]]
        waiting = self._make(d, cmd, [(e["name"], e["region"], e["wrote"]) for e in changes])
        if waiting is not None:
            return waiting
        after = [endpoint_entry(e["name"], e["region"], load_config(e["wrote"])) for e in entries]
        # every endpoint of the deployment stays in its facts, changed here or not
        changed = {(e["name"], e["region"]): e for e in after}
        kept = [changed.get((e["name"], e["region"]), e) for e in d.context.endpoints]
        facts: dict[str, Any] = {"endpoints": kept}
        if action is Action.DRAIN_OLD:
            read = [endpoint_entry(e["name"], e["region"], load_config(e["read"])) for e in entries]
            facts.update(self._drained(d, read))
        return Done({"changes": changes, "facts": facts, "summary": _weights_summary(after)})

    def _drained(self, d: Deployment, before: list[EndpointEntry]) -> dict[str, Any]:
        """Versions of this model that drain_old took off their last endpoint, with their
        registry status now (the finalize step archives them; undo puts the status back)."""
        versions = set()
        for entry in before:
            config = entry_config(entry)
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

    def _make(
        self, d: Deployment, cmd: Command, targets: list[tuple[str, str, dict[str, Any] | None]]
    ) -> NotYet | None:
        """Ask for each endpoint (name, region, config; None: deleted) at the first look, then
        look until serving has made them all (a SageMaker update takes minutes): NotYet
        meanwhile, never blocking. A rollback or a failure raises PortError; so does an
        endpoint still changing after `settle_timeout_s`."""
        now = self.clock()
        progress = d.context.progress.get(cmd.step)
        if not (progress and progress.started):  # first look (or again after a crash: idempotent)
            for name, region, wrote in targets:
                if wrote is None:
                    self.ports.serving.delete(name, region)
                else:
                    self.ports.serving.apply(EndpointConfig.model_validate(wrote))
        pending = []
        for name, region, wrote in targets:
            what = self.ports.serving.settled(name, region, load_config(wrote))
            if what is not None:
                pending.append(f"{name} ({region}) {what}")
        if not pending:
            return None
        started = self._started(d, cmd, now)
        limit = settle_timeout_s(d.spec.timeouts.startup_s)
        if now >= started + timedelta(seconds=limit):
            raise PortError(f"endpoint {pending[0]} after {limit}s: gave up waiting")
        poll = min(15.0, max(0.2, self.ws.settings.worker.poll_s))
        return NotYet(now + timedelta(seconds=poll), since(started, limit))

    def restore_endpoints(self, d: Deployment, cmd: Command) -> Outcome:
        # Only what this deployment's step changed goes back, on top of the config as it is
        # now: a change made since by someone else (another variant, another weight) stays.
        # What to restore is decided at the first look and kept: later looks only wait.
        remembered = self.store.remember(cmd.key, d.id, lambda: self._restorations(cmd))
        targets = [(t["name"], t["region"], t["config"]) for t in remembered["targets"]]
        waiting = self._make(d, cmd, targets)
        if waiting is not None:
            return waiting
        return Done({"summary": f"restored {len(cmd.args['changes'])} endpoint(s)"})

    def _restorations(self, cmd: Command) -> dict[str, Any]:
        targets = []
        for change in cmd.args["changes"]:
            live = self.ports.serving.get_endpoint(change["name"], change["region"])
            restored = revert(live, load_config(change["read"]), load_config(change["wrote"]))
            if restored != live:
                targets.append(
                    {
                        "name": change["name"],
                        "region": change["region"],
                        "config": dump_config(restored),
                    }
                )
        return {"targets": targets}


def _targets(d: Deployment, cmd: Command) -> list[EndpointEntry]:
    """The endpoints `cmd` changes: those of its region, when it acts in one of several."""
    # (a retirement's endpoints are wherever the model serves, not only in its regions)
    region = cmd.args.get("region")
    return [e for e in d.context.endpoints if region is None or e["region"] == region]


def endpoint_template(spec: DeploymentSpec, endpoint: str, region: str) -> EndpointConfig:
    """The endpoint `spec` asks for in `region`, serving nothing yet: what a new endpoint is
    made with (core.traffic.add_variant adds the candidate)."""
    return EndpointConfig(
        name=endpoint,
        region=region,
        variants=[],
        instance_type=spec.instance.type,
        instance_count=spec.instance.count,
        env=dict(spec.env),
        invocation_timeout_ms=spec.timeouts.invocation_ms,
        startup_timeout_s=spec.timeouts.startup_s,
        volume_size_gb=spec.instance.volume_gb,
        autoscaling=spec.autoscaling,
    )


def settle_timeout_s(startup_s: int) -> int:
    """How long an endpoint change may take: SageMaker downloads the model data and starts
    the containers (each bounded by `startup_s`) on new instances, after its own set-up."""
    return 1800 + 2 * startup_s


def _weights_summary(entries: list[EndpointEntry]) -> str:
    # the region is named where the entries span several (a wave's step, drain_old)
    several = len({e["region"] for e in entries}) > 1
    parts = []
    for entry in entries:
        name = f"{entry['name']} ({entry['region']})" if several else entry["name"]
        config = entry.get("config")
        if not config:
            parts.append(f"{name}: removed")
            continue
        weights = ", ".join(f"{v['name']} {v['weight']:g}%" for v in config["variants"])
        shadow = f"; shadow {config['shadow']['variant']['name']}" if config.get("shadow") else ""
        parts.append(f"{name}: {weights}{shadow}")
    return "; ".join(parts)
