"""The one API of the front ends (CLI, dashboard, Slack bot).

Every method checks its input and the actor's rights before it records
anything, so bad input and refused requests change no state; every action
that does change state is written to the audit history with its actor.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from core.checks import check_artifact, check_endpoint, check_files
from core.domain import (
    AuditRecord,
    Deployment,
    DeploymentState,
    Kind,
    Library,
    ModelVersion,
    UsageSite,
    iso,
    utcnow,
)
from core.events import Created
from core.executor import read_replay
from core.feed import FeedEntry
from core.layout import ALARM_PREFIX, artifact_prefix, variant_name
from core.machine import Abort, Approve, InvalidTransition, plan_of
from core.names import InvalidName, check_actor, check_model
from core.notify import Notifications
from core.ports import InvalidInput, NotFound, PortError, Ports
from core.spec import (
    DeploymentSpec,
    Replay,
    Shadow,
    SpecError,
    StrategyKind,
    merge,
    parse_deployment,
    read_deployment_file,
)
from core.store import Busy, Store, endpoint_lock, version_lock
from core.traffic import live_weight
from core.usage import alarm_sites, artifact_sites, code_sites, endpoint_sites, registry_site
from core.worker import Progress, Worker
from core.workspace import Workspace


class ServiceError(Exception):
    """A request was refused; the message is one line for the user."""

    exit_code = 1


class BadRequest(ServiceError):
    exit_code = 2


class PermissionDenied(ServiceError):
    exit_code = 3


class WaitTimeout(ServiceError):
    """The time to wait ran out while the deployment was still going (exit 1, like
    `kubectl rollout status`)."""


def _busy_message(exc: Busy) -> str:
    kind, _, what = exc.lock.partition(":")
    doing = "retired" if exc.deployment_id.startswith("ret-") else "deployed"
    holder = f"{exc.deployment_id} (started by {exc.requested_by})"
    if kind == "version":
        model, _, version = what.rpartition(":")
        subject = f"{model} v{version} is being {doing} by {holder}"
    else:
        subject = f"endpoint {what} is busy: {holder} is still active"
    return f"{subject}; wait for it, or abort it"


def new_id(kind: Kind) -> str:
    prefix = "ret" if kind is Kind.RETIRE else "dep"
    return f"{prefix}-{utcnow().strftime('%y%m%d')}-{uuid.uuid4().hex[:6]}"


class Service:
    def __init__(
        self,
        ws: Workspace,
        store: Store,
        ports: Ports,
        actor: str,
        clock: Any = utcnow,
    ) -> None:
        self.ws = ws
        self.store = store
        self.ports = ports
        try:
            self.actor = check_actor(actor)
        except InvalidName as exc:
            raise BadRequest(str(exc)) from None
        self.clock = clock
        self.policy = ws.settings.policy

    def close(self) -> None:
        self.store.close()

    def _audit(self, action: str, target: str, **detail: Any) -> AuditRecord:
        return AuditRecord(
            at=iso(self.clock()), actor=self.actor, action=action, target=target, detail=detail
        )

    # ------------------------------------------------------------ models

    def register(
        self,
        name: str,
        artifact: Path,
        library: str,
        golden: Path | None = None,
        owner: str | None = None,
    ) -> ModelVersion:
        try:
            check_model(name)
        except InvalidName as exc:
            raise BadRequest(str(exc)) from None
        try:
            lib = Library(library)
        except ValueError:
            raise BadRequest(
                f"--library {library}: expected one of {', '.join(x.value for x in Library)}"
            ) from None
        # Check before registering: a version that cannot load, or whose golden rows do not
        # fit it, never enters the registry (the check runs the model in a child process).
        try:
            check_artifact(artifact, lib, golden, self.ws.scratch)
            mv = self.ports.registry.register(name, artifact, lib, golden, owner, self.actor)
        except InvalidInput as exc:
            raise BadRequest(str(exc)) from None
        self.store.audit(self._audit("register", f"{name}/v{mv.version}", library=lib.value))
        return mv

    def version(self, model: str, version: int) -> ModelVersion:
        try:
            return self.ports.registry.get(model, version)
        except NotFound as exc:
            raise BadRequest(str(exc)) from None

    def models(self) -> list[dict[str, Any]]:
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

    # ------------------------------------------------------------ deploy

    def _spec(
        self,
        file: Path | None,
        endpoint: str | None,
        strategy: str | None,
        regions: list[str] | None,
    ) -> DeploymentSpec:
        try:
            data = merge({}, self.ws.settings.defaults)
            source = "deployment"
            if file is not None:
                data = merge(data, read_deployment_file(file))
                source = str(file)
            if endpoint is not None:
                data["endpoint"] = endpoint  # "" is refused by the spec, never "the default"
            if regions:
                data["regions"] = list(regions)
            if strategy:
                try:
                    kind = StrategyKind(strategy)
                except ValueError:
                    raise BadRequest(
                        f"--strategy {strategy}: expected one of {', '.join(k.value for k in StrategyKind)}"
                    ) from None
                current = data.get("strategy") or {}
                keep = (
                    current
                    if isinstance(current, dict) and current.get("kind", kind.value) == kind.value
                    else {}
                )
                data["strategy"] = {**keep, "kind": kind.value}
            spec = parse_deployment(data, source)
        except SpecError as exc:
            raise BadRequest(str(exc)) from None
        return self._with_replay_resolved(spec, file)

    def _default_endpoint(self, model: str, spec: DeploymentSpec) -> DeploymentSpec:
        """No endpoint named: the one endpoint that serves the model now, if there is one."""
        if spec.endpoint is not None:
            return spec
        serving = sorted({c.name for c in self.ports.serving.endpoints() for v in c.variants
                          if v.model == model and v.weight > 0})  # fmt: skip
        if len(serving) == 1:
            return spec.model_copy(update={"endpoint": serving[0]})
        where = f" ({model} serves on {', '.join(serving)})" if serving else ""
        raise BadRequest(
            f"no endpoint: pass --endpoint NAME or set `endpoint:` in the deployment file{where}"
        )

    def _with_replay_resolved(self, spec: DeploymentSpec, file: Path | None) -> DeploymentSpec:
        """A replay file is read by whichever worker runs the deployment, maybe elsewhere:
        pin it to an absolute path (relative to the deployment file) and check it now."""
        strategy = spec.strategy
        if not isinstance(strategy, Shadow) or not isinstance(strategy.traffic, Replay):
            return spec
        path = Path(strategy.traffic.replay).expanduser()
        if not path.is_absolute():
            path = (file.parent if file is not None else Path.cwd()) / path
        try:
            read_replay(path)
        except InvalidInput as exc:
            raise BadRequest(str(exc)) from None
        traffic = Replay(replay=str(path.resolve()))
        return spec.model_copy(
            update={"strategy": strategy.model_copy(update={"traffic": traffic})}
        )

    def _may_deploy(self, verb: str) -> None:
        allowed = self.policy.deployers + self.policy.admins
        if self.policy.deployers and self.actor not in allowed:
            raise PermissionDenied(f"{self.actor} may not {verb} (policy.deployers)")

    def _draft(
        self, kind: Kind, model: str, version: int, endpoint: str, spec: DeploymentSpec
    ) -> Deployment:
        now = iso(self.clock())
        return Deployment(
            id=new_id(kind),
            kind=kind,
            model=model,
            version=version,
            endpoint=endpoint,
            regions=list(spec.regions),
            spec=spec,
            requested_by=self.actor,
            created_at=now,
            updated_at=now,
            events=[Created(at=now, by=self.actor)],
        )

    def deploy(
        self,
        model: str,
        version: int,
        endpoint: str | None = None,
        strategy: str | None = None,
        regions: list[str] | None = None,
        file: Path | None = None,
        dry_run: bool = False,
    ) -> Deployment:
        self._may_deploy("deploy")
        spec = self._spec(file, endpoint, strategy, regions)
        mv = self.version(model, version)
        spec = self._default_endpoint(model, spec)
        assert spec.endpoint is not None
        try:
            check_files(self.ports.registry, mv, self.ws.scratch)
            current = {r: self.ports.serving.get_endpoint(spec.endpoint, r) for r in spec.regions}
            check_endpoint(mv, spec.endpoint, spec, current)
        except InvalidInput as exc:
            raise BadRequest(str(exc)) from None
        d = self._draft(Kind.DEPLOY, model, version, spec.endpoint, spec)
        if dry_run:
            return d
        audit = self._audit(
            "deploy",
            d.id,
            model=model,
            version=version,
            endpoint=spec.endpoint,
            strategy=d.strategy,
        )
        try:
            # Shared on the version: one version may go to two endpoints at once, but not
            # while it is being retired (the retirement holds it exclusively).
            return self.store.create(
                d, [endpoint_lock(spec.endpoint)], audit, shared=[version_lock(model, version)]
            )
        except Busy as exc:
            raise BadRequest(_busy_message(exc)) from None

    def plan(self, d: Deployment) -> list[dict[str, str]]:
        return [
            {"step": s.name, "stage": s.stage.value, "action": s.action.value} for s in plan_of(d)
        ]

    # ------------------------------------------------------------ status

    def get(self, ref: str) -> Deployment:
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
        return self.store.recent(active_only=active_only)

    def audit_log(self, target: str | None = None) -> list[AuditRecord]:
        return self.store.audit_log(target)

    # ------------------------------------------------------------ approve, abort

    def approvers_for(self, d: Deployment) -> list[str] | None:
        """Who may approve `d` (None: anyone but the requester, unless policy allows)."""
        approvers = self.policy.approvers
        try:
            owner = self.ports.registry.get(d.model, d.version).owner
        except PortError:
            owner = None
        for key in (d.model, f"team:{owner}" if owner else None, "*"):
            if key and key in approvers:
                return list(approvers[key]) + list(self.policy.admins)
        return None

    def check_approver(self, d: Deployment) -> None:
        if d.requested_by == self.actor and not self.policy.allow_self_approval:
            raise PermissionDenied(
                f"{self.actor} cannot approve {d.id}: they requested it "
                "(four-eyes; policy.allow_self_approval changes this)"
            )
        allowed = self.approvers_for(d)
        if allowed is not None and self.actor not in allowed:
            raise PermissionDenied(
                f"{self.actor} cannot approve {d.id}: approvers are {', '.join(allowed) or 'nobody'}"
            )

    def _event(self, d: Deployment, ev: Approve | Abort, action: str, **detail: Any) -> Deployment:
        worker = self.worker()
        try:
            return worker.apply(d, ev, self._audit(action, d.id, **detail))
        except InvalidTransition as exc:
            raise BadRequest(str(exc)) from None

    def approve(self, ref: str, gate: str | None = None) -> Deployment:
        d = self.get(ref)
        if d.state is not DeploymentState.WAITING_APPROVAL:
            raise BadRequest(
                f"{d.id} is not waiting for approval (it is {d.state.value}, stage {d.stage.value})"
            )
        try:
            self.check_approver(d)
        except PermissionDenied as exc:
            self.store.audit(self._audit("approve_refused", d.id, reason=str(exc)))
            raise
        return self._event(
            d,
            Approve(at=self.clock(), by=self.actor, gate=gate),
            "approve",
            gate=d.waiting_at,
        )

    def abort(self, ref: str, reason: str | None = None) -> Deployment:
        d = self.get(ref)
        if not d.active:
            raise BadRequest(f"{d.id} has already ended ({d.state.value})")
        allowed = {d.requested_by, *self.policy.deployers, *self.policy.admins}
        for names in self.policy.approvers.values():
            allowed.update(names)
        if self.policy.deployers and self.actor not in allowed:
            raise PermissionDenied(f"{self.actor} may not abort {d.id}")
        return self._event(
            d, Abort(at=self.clock(), by=self.actor, reason=reason), "abort", reason=reason or ""
        )

    # ------------------------------------------------------------ retire

    def retire(self, model: str, version: int | None = None, force: bool = False) -> Deployment:
        self._may_deploy("retire")
        if force:
            self._may_force()
        if version is not None:
            versions = [self.version(model, version).version]
        else:
            try:
                versions = [mv.version for mv in self.ports.registry.versions(model)]
            except PortError as exc:
                raise BadRequest(str(exc)) from None
            if not versions:
                raise BadRequest(f"model {model!r} is not registered")
        names = {variant_name(model, v) for v in versions}
        endpoints: set[str] = set()
        for config in self.ports.serving.endpoints():
            shadow = {config.shadow.variant.name} if config.shadow else set()
            if names & ({v.name for v in config.variants} | shadow):
                endpoints.add(config.name)
            weight = live_weight(config, names)
            if weight > 0 and not force:
                shown = f"{model} v{version}" if version else model
                raise BadRequest(
                    f"{shown} still takes {weight:g}% of live traffic on {config.name} "
                    f"({config.region}); deploy another version there first, or pass --force"
                )
        spec = DeploymentSpec(endpoint=None)
        d = self._draft(Kind.RETIRE, model, version or 0, "-", spec)
        d.context.versions = versions
        d.force = force
        # Exclusive on the versions (no deployment of them meanwhile) and on every endpoint
        # they are on, like a deployment there: a rollout and a retirement never interleave.
        locks = [version_lock(model, v) for v in versions]
        locks += [endpoint_lock(e) for e in sorted(endpoints)]
        audit = self._audit("retire", d.id, model=model, versions=versions, force=force)
        try:
            return self.store.create(d, locks, audit)
        except Busy as exc:
            raise BadRequest(_busy_message(exc)) from None

    def _may_force(self) -> None:
        """Forcing a retirement takes live traffic away: an admin's right, and only named
        admins have it (a CLI user name is self-declared, see the README)."""
        if not self.policy.admins:
            raise PermissionDenied(
                "--force needs an admin, and none is named: list admins under "
                "policy.admins in mmm.yaml"
            )
        if self.actor not in self.policy.admins:
            raise PermissionDenied(
                f"{self.actor} may not force a retirement (policy.admins: "
                f"{', '.join(self.policy.admins)})"
            )

    # ------------------------------------------------------------ usage

    def usage(self, model: str, version: int | None = None) -> list[UsageSite]:
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

    # ------------------------------------------------------------ the change feed

    def changes(self, since: int = 0, limit: int = 500) -> list[FeedEntry]:
        """What changed after feed position `since`, in order (see core.feed)."""
        return self.store.changes_since(since, limit)

    def last_change(self) -> int:
        """The newest feed position: a front end that starts now follows from here."""
        return self.store.last_change()

    def notifications(self) -> Notifications:
        return Notifications(
            self.store, self.ports.notifier, lease_s=self.ws.settings.worker.lease_s
        )

    # ------------------------------------------------------------ running

    def worker(self, on_change: Progress | None = None) -> Worker:
        return Worker(self.ws, self.store, self.ports, clock=self.clock, on_change=on_change)

    def worker_running(self) -> bool:
        """A `mmm up` or `mmm worker` is alive and will run what is queued."""
        return bool(
            self.store.live_workers(
                time.time(), within_s=max(5.0, self.ws.settings.worker.poll_s * 10)
            )
        )

    def run(
        self, d: Deployment, on_change: Progress | None = None, timeout_s: float | None = None
    ) -> Deployment:
        """Drive `d` in this process until it ends or waits for a person (notifying as it goes,
        as `mmm up` would)."""
        with self.notifications().running():
            return self.worker(on_change).drive(d.id, timeout_s)

    def wait(
        self,
        ref: str,
        timeout_s: float | None,
        on_change: Progress | None = None,
        poll_s: float = 0.5,
    ) -> Deployment:
        """Block until the deployment ends or waits for a person. A live worker runs it
        meanwhile; when none is alive (or its heartbeat stops), this process runs it.
        Raises WaitTimeout when `timeout_s` runs out first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last = None
        while True:
            d = self.get(ref)
            if on_change is not None and (last is None or d.rev != last):
                on_change(d)
                last = d.rev
            if _settled(d):
                return d
            if not self.worker_running():
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                d = self.run(d, on_change, left)
                if _settled(d):
                    return d
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"timed out after {timeout_s:g}s: {d.id} is still {d.state.value} "
                    f"(stage {d.stage.value}); `mmm status {d.id} --wait` waits again"
                )
            time.sleep(poll_s)


def _settled(d: Deployment) -> bool:
    """Ended, or waiting for a person: nothing more happens without someone acting."""
    return not d.active or (d.state is DeploymentState.WAITING_APPROVAL and not d.pending)
