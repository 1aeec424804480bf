"""Steps of a retirement: scan where the versions are used, remove their alarms and their
generated code, move their artifacts to the trash and purge it at the end; and put the
alarms and artifacts back, to undo. (Traffic comes off with the endpoint steps.)"""

from __future__ import annotations

from typing import Any

from core.domain import Command, Deployment
from core.layout import (
    ALARM_PREFIX,
    artifact_prefix,
    descriptor_path,
    parse_alarm_name,
    variant_name,
)
from core.ports import AlarmRef, InvalidInput, PortError
from core.spec import Alarms
from core.steps.base import Done, NotYet, Outcome, Steps, endpoint_entry
from core.traffic import holding, still_live
from core.usage import code_sites, whole_artifacts


class RetirementSteps(Steps):
    def scan_usage(self, d: Deployment, cmd: Command) -> Outcome:
        versions = self._versions(d)
        names = {variant_name(d.model, v) for v in versions}
        configs = self.ports.serving.endpoints()
        affected = [endpoint_entry(c.name, c.region, c) for c in holding(configs, names)]
        # Checked again here: traffic may have moved since the retirement was asked for.
        refused = still_live(configs, names, d.model)
        if refused and not d.force:
            raise InvalidInput(refused)
        statuses = {str(v): self.ports.registry.get(d.model, v).status.value for v in versions}
        alarms = self._alarm_entries(d, versions)
        deletions = self._code_deletions(d, set(versions))
        listed = [
            uri
            for bucket in ("production", "staging")
            for v in versions
            for uri in self.ports.artifacts.list(bucket, artifact_prefix(d.model, v))
        ]
        # Whole artifacts: a model folder is trashed and put back in one move, not file by file.
        uris = whole_artifacts(self.ports.artifacts, listed)
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

    def _alarm_entries(self, d: Deployment, versions: list[str]) -> list[dict[str, Any]]:
        """The alarms of the versions, with the thresholds they were made with (to restore them)."""
        # (region, name): the same names may exist in each region
        existing = set(self.ports.monitor.alarms(ALARM_PREFIX))
        entries = []
        for past in self._deployments_of(d.model):
            if past.version not in versions:
                continue
            for entry in past.context.alarms:
                region = entry["region"]
                names = [n for n in entry["names"] if AlarmRef(region, n) in existing]
                if names:
                    entries.append({**entry, "names": names})
                    existing -= {AlarmRef(region, n) for n in names}
        for version in versions:  # alarms made outside any deployment mmm remembers
            variant = variant_name(d.model, version)
            for region in sorted({a.region for a in existing}):
                orphans = sorted(
                    a.name
                    for a in existing
                    if a.region == region
                    and (p := parse_alarm_name(a.name))
                    and p.variant == variant
                )
                if orphans:
                    entries.append(
                        {
                            "endpoint": "",
                            "region": region,
                            "variant": variant,
                            "names": orphans,
                            "thresholds": Alarms().model_dump(),
                        }
                    )
        return entries

    def _code_deletions(self, d: Deployment, versions: set[str]) -> list[str]:
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

    def remove_alarms(self, d: Deployment, cmd: Command) -> Outcome:
        entries = d.context.retire_alarms
        for entry in entries:
            self.ports.monitor.delete_alarms(entry["names"], entry["region"])
        return Done({"removed": entries, "summary": f"{len(entries)} alarm set(s) removed"})

    def restore_alarms(self, d: Deployment, cmd: Command) -> Outcome:
        for entry in cmd.args["alarms"]:
            self.ports.monitor.ensure_alarms(
                entry["endpoint"], entry["region"], entry["variant"], Alarms(**entry["thresholds"])
            )
        return Done({"summary": "alarms restored"})

    def remove_code(self, d: Deployment, cmd: Command) -> Outcome:
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

    def _located(self, uri: str) -> tuple[str, str]:
        located = self.ports.artifacts.locate(uri)
        if located is None:
            raise PortError(f"{uri}: not an artifact URI of the configured store")
        return located

    def _trash_key(self, d: Deployment, uri: str) -> str:
        bucket, key = self._located(uri)
        return f"{d.id}/{bucket}/{key}"

    def trash_artifacts(self, d: Deployment, cmd: Command) -> Outcome:
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

    def restore_artifacts(self, d: Deployment, cmd: Command) -> Outcome:
        for move in cmd.args["moves"]:
            if self.ports.artifacts.exists(move["to"]):
                bucket, key = self._located(move["from"])
                self.ports.artifacts.copy(move["to"], bucket, key)
                self.ports.artifacts.delete(move["to"])
        return Done({"summary": f"{len(cmd.args['moves'])} artifact(s) restored"})

    def purge_trash(self, d: Deployment, cmd: Command) -> Outcome:
        store = self.ports.artifacts
        files = store.list("trash", f"{d.id}/")
        # The retirement's trash goes as one folder (prefix) per trash bucket, model folders
        # with it: on S3 a batched deletion, not a request per object.
        located = (store.locate(u) for u in files)
        for bucket in dict.fromkeys(loc[0] for loc in located if loc is not None):
            store.delete(store.uri(bucket, f"{d.id}/"))
        return Done({"summary": f"purged {len(files)} file(s)"})
