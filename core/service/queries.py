"""What the front ends read: deployments, models, usage sites, the audit history, the feed,
and what the policy lets the actor do. Nothing here changes state."""

from __future__ import annotations

from typing import Any

from core import policy
from core.domain import AuditRecord, Deployment, ModelVersion, UsageSite
from core.feed import FeedEntry
from core.layout import variant_name
from core.machine import plan_of
from core.names import InvalidName
from core.ports import EndpointConfig, NotFound, PortError, VariantFigures
from core.preview import AbortPreview, RetirePreview, preview_abort
from core.service.base import ServiceBase
from core.service.errors import BadRequest
from core.store import DeploymentQuery
from core.traffic import still_live
from core.usage import endpoint_sites, sites_of
from core.versions import check_version, shown, sort_key


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

    def page(self, query: DeploymentQuery) -> tuple[list[Deployment], int | None]:
        """One page of deployments matching `query` (active first, then newest), and how
        many match in all: answered by the store's indexes, however many there are. The
        count is None on a store whose count reads every match (DynamoDB): a page there
        costs what it shows, and a full page means more may follow."""
        total = self.store.count(query) if self.store.counts_cheaply else None
        return self.store.deployments(query), total

    def preview_abort(self, ref: str) -> AbortPreview:
        """What `abort` would undo now, and how each endpoint would serve afterwards."""
        return preview_abort(self.get(ref), self.ports.serving.get_endpoint)

    def plan(self, d: Deployment) -> list[dict[str, str]]:
        """The steps `d` goes through, as rows of step, stage and action."""
        return [
            {"step": s.name, "stage": s.stage.value, "action": s.action.value} for s in plan_of(d)
        ]

    def audit_log(
        self, target: str | None = None, limit: int = 500, offset: int = 0
    ) -> list[AuditRecord]:
        """Who did what, newest first; only about `target` (a deployment id, `model/vN`)
        if given; `limit` records from `offset`."""
        return self.store.audit_log(target, limit, offset)

    # ------------------------------------------------------------ models

    def version(self, model: str, version: str) -> ModelVersion:
        """One registered version; refuses a malformed version and one the registry does
        not have."""
        try:
            return self.ports.registry.get(model, check_version(version))
        except (NotFound, InvalidName) as exc:
            raise BadRequest(str(exc)) from None

    def models(self) -> list[dict[str, Any]]:
        """Every model with its owner and versions (in the registry's order, `version` as
        JSON shows it), and where each version serves."""
        endpoints = self.ports.serving.endpoints()
        out: dict[str, dict[str, Any]] = {}
        ordered = sorted(self.ports.registry.versions(), key=lambda mv: sort_key(mv.version))
        for mv in ordered:
            entry = out.setdefault(mv.name, {"name": mv.name, "owner": mv.owner, "versions": []})
            sites = endpoint_sites(endpoints, mv.name, {mv.version})
            entry["versions"].append(
                {
                    "version": shown(mv.version),
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

    def usage(self, model: str, version: str | None = None) -> list[UsageSite]:
        """Every place a model (or one version) is used: endpoints, artifacts, alarms, code,
        registry, read from the systems now; refuses a model or version that is not
        registered."""
        try:
            versions = {mv.version for mv in self.ports.registry.versions(model)}
        except PortError as exc:
            raise BadRequest(str(exc)) from None
        if not versions:
            raise BadRequest(f"model {model!r} is not registered")
        if version is not None and version not in versions:
            raise BadRequest(f"model {model!r} has no version {version}")
        return sites_of(self.ports, model, {version} if version is not None else None)

    def usage_index(
        self, model: str | None = None, offset: int = 0, limit: int = 500
    ) -> list[UsageSite]:
        """Usage sites of every model (or one) as the worker last saw them: what a dashboard
        lists without asking every system; `usage` reads the systems themselves."""
        return self.store.usage_index(model, offset, limit)

    def preview_retire(self, model: str, version: str | None = None) -> RetirePreview:
        """What `retire` would remove (every usage site), and why it would be refused now
        (live traffic) if it would."""
        sites = self.usage(model, version)
        versions = {version} if version is not None else {s.version for s in sites}
        names = {variant_name(model, v) for v in versions}
        what = f"{model} v{version}" if version else model
        return RetirePreview(
            sites=sites, refused=still_live(self.ports.serving.endpoints(), names, what)
        )

    # ------------------------------------------------------------ endpoints

    def endpoints(self) -> list[EndpointConfig]:
        """Every endpoint in every region: its variants with their weights, and its shadow."""
        return sorted(self.ports.serving.endpoints(), key=lambda c: (c.name, c.region))

    def figures(self, endpoint: str, region: str, window_s: float = 60.0) -> list[VariantFigures]:
        """Live figures of each variant of an endpoint (and of its shadow) over the last
        `window_s` seconds; refuses an endpoint that does not exist there."""
        config = self.ports.serving.get_endpoint(endpoint, region)
        if config is None:
            raise BadRequest(f"no endpoint {endpoint} in {region}")
        roles = [(v.name, "production") for v in config.variants]
        if config.shadow is not None:
            roles.append((config.shadow.variant.name, "shadow"))
        monitor = self.ports.monitor
        return [monitor.figures(endpoint, region, name, role, window_s) for name, role in roles]

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
