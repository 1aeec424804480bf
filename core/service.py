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

from core.bootstrap import Ports, Workspace
from core.checks import check_endpoint, check_files
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
from core.executor import read_replay
from core.machine import Abort, Approve, InvalidTransition, plan_of
from core.ports import InvalidInput, NotFound, PortError
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
from core.store import Busy, Store
from core.traffic import variant_name
from core.usage import alarm_sites, artifact_sites, code_sites, endpoint_sites, registry_site
from core.worker import Progress, Worker


class ServiceError(Exception):
    """A request was refused; the message is one line for the user."""

    exit_code = 1


class BadRequest(ServiceError):
    exit_code = 2


class PermissionDenied(ServiceError):
    exit_code = 3


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
        self.actor = actor
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
        if (
            not name
            or not name.replace("-", "").replace("_", "").isalnum()
            or not name[0].isalnum()
        ):
            raise BadRequest(f"{name!r}: a model name is letters, digits, '-' and '_'")
        try:
            lib = Library(library)
        except ValueError:
            raise BadRequest(
                f"--library {library}: expected one of {', '.join(x.value for x in Library)}"
            ) from None
        # Check before registering: a version that cannot load never enters the registry.
        from core.runtime import load_model, read_golden

        try:
            if not artifact.is_file():
                raise InvalidInput(f"{artifact}: no such file")
            load_model(artifact, lib)
            if golden is not None:
                if not golden.is_file():
                    raise InvalidInput(f"{golden}: no such file")
                read_golden(golden)
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
            if endpoint:
                data["endpoint"] = endpoint
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
            events=[{"at": now, "type": "created", "by": self.actor}],
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
        locks = [f"endpoint:{spec.endpoint}"]
        try:
            return self.store.create(
                d,
                locks,
                self._audit(
                    "deploy",
                    d.id,
                    model=model,
                    version=version,
                    endpoint=spec.endpoint,
                    strategy=d.strategy,
                ),
            )
        except Busy as exc:
            raise BadRequest(
                f"endpoint {spec.endpoint} is busy: {exc.deployment_id} (started by {exc.requested_by}) "
                "is still active; wait for it, or abort it"
            ) from None

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
            gate=d.context.get("gate"),
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
        if force and self.policy.admins and self.actor not in self.policy.admins:
            raise PermissionDenied(f"{self.actor} may not force a retirement (policy.admins)")
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
        if not force:
            for config in self.ports.serving.endpoints():
                weight = sum(v.weight for v in config.variants if v.name in names)
                if weight > 0:
                    raise BadRequest(
                        f"{model} {'v' + str(version) if version else ''} still takes {weight:g}% of live "
                        f"traffic on {config.name} ({config.region}); deploy another version there first, "
                        "or pass --force".replace("  ", " ")
                    )
        for active in self.store.recent(active_only=True):
            if active.model == model and active.version in versions:
                raise BadRequest(
                    f"{active.id} is deploying {model} v{active.version}; wait for it or abort it"
                )
        spec = DeploymentSpec(endpoint=None)
        d = self._draft(Kind.RETIRE, model, version or 0, "-", spec)
        d.context["versions"] = versions
        d.force = force
        locks = [f"model:{model}:v{v}" for v in versions]
        try:
            return self.store.create(
                d, locks, self._audit("retire", d.id, model=model, versions=versions, force=force)
            )
        except Busy as exc:
            raise BadRequest(f"{model} is already being retired by {exc.deployment_id}") from None

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
            self.ports.artifacts.list("production", f"models/{model}/"), model, wanted
        )
        sites += alarm_sites(self.ports.monitor.alarms("mmm-"), model, wanted, None)
        sites += code_sites(self.ports.codehost, model, wanted)
        for mv in versions:
            if mv.version in wanted:
                site = registry_site(model, mv.version, mv.status, mv.registry_ref)
                if site is not None:
                    sites.append(site)
        return sites

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
        """Drive `d` in this process until it ends or waits for a person."""
        return self.worker(on_change).drive(d.id, timeout_s)

    def wait(
        self,
        ref: str,
        timeout_s: float | None,
        on_change: Progress | None = None,
        poll_s: float = 0.5,
    ) -> Deployment:
        """Block until the deployment ends or waits for approval (another process runs it)."""
        start = time.monotonic()
        last = None
        while True:
            d = self.get(ref)
            if on_change is not None and (last is None or d.rev != last):
                on_change(d)
                last = d.rev
            if not d.active or d.state is DeploymentState.WAITING_APPROVAL:
                return d
            if timeout_s is not None and time.monotonic() - start >= timeout_s:
                return d
            time.sleep(poll_s)
