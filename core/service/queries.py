"""What the front ends read: deployments, models, usage sites, the audit history, the feed,
and what the policy lets the actor do. Nothing here changes state."""

from __future__ import annotations

from typing import Any

from core import policy
from core.domain import AuditRecord, Deployment, ModelVersion, UsageSite
from core.feed import FeedEntry
from core.layout import ALARM_PREFIX, artifact_prefix
from core.machine import plan_of
from core.ports import NotFound, PortError
from core.service.base import ServiceBase
from core.service.errors import BadRequest
from core.usage import alarm_sites, artifact_sites, code_sites, endpoint_sites, registry_site


class Queries(ServiceBase):
    # ------------------------------------------------------------ deployments

    def get(self, ref: str) -> Deployment:
        """The deployment with id `ref`, or the one id that starts with it (4 characters at
        least); refuses an unknown or ambiguous `ref`."""
        found = self.store.get(ref)
        if found is not None:
            return found
        matches = self.store.find(ref) if len(ref) >= 4 else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise BadRequest(f"{ref!r} is ambiguous: {', '.join(m.id for m in matches[:5])}")
        raise BadRequest(f"no deployment {ref!r}")

    def deployments(self, active_only: bool = False) -> list[Deployment]:
        """The newest deployments and retirements, newest first (only active ones if asked)."""
        return self.store.recent(active_only=active_only)

    def plan(self, d: Deployment) -> list[dict[str, str]]:
        """The steps `d` goes through, as rows of step, stage and action."""
        return [
            {"step": s.name, "stage": s.stage.value, "action": s.action.value} for s in plan_of(d)
        ]

    def audit_log(self, target: str | None = None) -> list[AuditRecord]:
        """Who did what, newest first; only about `target` (a deployment id, `model/vN`)
        if given."""
        return self.store.audit_log(target)

    # ------------------------------------------------------------ models

    def version(self, model: str, version: int) -> ModelVersion:
        """One registered version; refuses one the registry does not have."""
        try:
            return self.ports.registry.get(model, version)
        except NotFound as exc:
            raise BadRequest(str(exc)) from None

    def models(self) -> list[dict[str, Any]]:
        """Every model with its owner and versions, and where each version serves."""
        endpoints = self.ports.serving.endpoints()
        out: dict[str, dict[str, Any]] = {}
        for mv in self.ports.registry.versions():
            entry = out.setdefault(mv.name, {"name": mv.name, "owner": mv.owner, "versions": []})
            sites = endpoint_sites(endpoints, mv.name, {mv.version})
            entry["versions"].append(
                {
                    "version": mv.version,
                    "library": mv.library.value,
                    "status": mv.status.value,
                    "created_by": mv.created_by,
                    "created_at": mv.created_at,
                    "golden": mv.golden is not None,
                    "endpoints": [
                        {"endpoint": s.location, "region": s.region, **s.detail} for s in sites
                    ],
                }
            )
            entry["owner"] = mv.owner or entry["owner"]
        return list(out.values())

    def usage(self, model: str, version: int | None = None) -> list[UsageSite]:
        """Every place a model (or one version) is used: endpoints, artifacts, alarms, code,
        registry; refuses a model or version that is not registered."""
        try:
            versions = self.ports.registry.versions(model)
        except PortError as exc:
            raise BadRequest(str(exc)) from None
        if not versions:
            raise BadRequest(f"model {model!r} is not registered")
        wanted = {version} if version is not None else {mv.version for mv in versions}
        if version is not None and version not in {mv.version for mv in versions}:
            raise BadRequest(f"model {model!r} has no version {version}")
        sites = endpoint_sites(self.ports.serving.endpoints(), model, wanted)
        sites += artifact_sites(
            self.ports.artifacts.list("production", artifact_prefix(model)), model, wanted
        )
        sites += alarm_sites(self.ports.monitor.alarms(ALARM_PREFIX), model, wanted, None)
        sites += code_sites(self.ports.codehost, model, wanted)
        for mv in versions:
            if mv.version in wanted:
                site = registry_site(model, mv.version, mv.status, mv.registry_ref)
                if site is not None:
                    sites.append(site)
        return sites

    # ------------------------------------------------------------ rights (core.policy)

    def _owner(self, d: Deployment) -> str | None:
        """The team that owns the deployed version (None when the registry cannot say)."""
        try:
            return self.ports.registry.get(d.model, d.version).owner
        except PortError:
            return None

    def approvers_for(self, d: Deployment) -> list[str] | None:
        """Who may approve `d` (None: anyone but the requester, unless policy allows)."""
        return policy.approvers_for(d.model, self._owner(d), self.policy)

    def can_approve(self, d: Deployment) -> bool:
        """Whether the actor may approve `d` by the policy (its state aside): a front end
        greys out its Approve button when not."""
        return policy.can_approve(self.actor, d, self.policy, self._owner(d))

    # ------------------------------------------------------------ the change feed

    def changes(self, since: int = 0, limit: int = 500) -> list[FeedEntry]:
        """What changed after feed position `since`, in order (see core.feed)."""
        return self.store.changes_since(since, limit)

    def last_change(self) -> int:
        """The newest feed position: a front end that starts now follows from here."""
        return self.store.last_change()
