"""What the front ends ask to be done: register, deploy, approve, abort, retire, rollback.

Each checks its input and the actor's rights (core.policy) before it records anything, so
bad input and refused requests change no state; each records what it does in the audit
history with its actor. A recorded deployment is carried out by a worker (see `submit`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from core import policy
from core.checks import check_artifact, check_endpoint, check_files
from core.domain import (
    Deployment,
    DeploymentState,
    Kind,
    Library,
    ModelVersion,
    VersionStatus,
    iso,
    utcnow,
)
from core.events import Created
from core.layout import variant_name
from core.machine import Abort, Approve, InvalidTransition
from core.names import InvalidName, check_model
from core.ports import EndpointConfig, InvalidInput, NotFound, PortError, Variant, VariantCalls
from core.service.errors import BadRequest, PermissionDenied, busy_message, policy_checked
from core.service.inputs import default_endpoint, deployment_spec
from core.service.rollback import main_variant, served_before
from core.service.running import Running
from core.spec import DeploymentSpec, StrategyKind
from core.store import Busy, DeploymentQuery, endpoint_lock, version_lock
from core.traffic import holding, still_live
from core.versions import EVERY_VERSION, shown

# How many of the newest deployments `rollback` looks through for the endpoint's last success.


def _variants(configs: Iterable[EndpointConfig | None]) -> Iterator[Variant]:
    """Every variant on `configs`, shadows included."""
    for config in configs:
        if config is None:
            continue
        yield from config.variants
        if config.shadow is not None:
            yield config.shadow.variant


def not_waiting(d: Deployment) -> str:
    """Why `d` cannot be approved now: where it is, and who moved it on."""
    line = f"{d.id} is not waiting for approval (it is {d.state.value}, stage {d.stage.value})"
    if d.end_reason is not None and d.error:
        return f"{line}: {d.error}"
    if d.approvals:
        last = d.approvals[-1]
        return f"{line}: {last.by} approved it at gate {last.gate}"
    return line


def not_abortable(d: Deployment) -> str:
    """Why `d` cannot be aborted now: it has ended, or it is being undone already."""
    if not d.active:
        line = f"{d.id} has already ended ({d.state.value})"
    else:
        line = f"{d.id} is already being undone"
    return f"{line}: {d.error}" if d.error else line


def overtaken(d: Deployment, gate: str) -> str:
    """Why an approval of `gate` is refused now that `d` is where it is (someone else's
    approval or abort went first)."""
    if d.state is not DeploymentState.WAITING_APPROVAL:
        return not_waiting(d)
    passed = next((a for a in reversed(d.approvals) if a.gate == gate), None)
    if passed is None:
        return f"{d.id} waits at gate {d.waiting_at}, not {gate}"
    return (
        f"{d.id} no longer waits at gate {gate}: {passed.by} approved it; it now waits at "
        f"gate {d.waiting_at} (approve again to pass that one)"
    )


def new_id(kind: Kind) -> str:
    """A new deployment id: `dep-YYMMDD-xxxxxx` (`ret-` for a retirement)."""
    prefix = "ret" if kind is Kind.RETIRE else "dep"
    return f"{prefix}-{utcnow().strftime('%y%m%d')}-{uuid.uuid4().hex[:6]}"


class Commands(Running):
    # ------------------------------------------------------------ models

    def register(
        self,
        name: str,
        artifact: Path,
        library: str,
        golden: Path | None = None,
        owner: str | None = None,
    ) -> ModelVersion:
        """Register a new version of model `name`; refuses a bad name or library, and an
        artifact that does not load or whose golden rows do not fit it."""
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

    # ------------------------------------------------------------ deploy

    def deploy(
        self,
        model: str,
        version: str,
        endpoint: str | None = None,
        strategy: str | None = None,
        regions: list[str] | None = None,
        file: Path | None = None,
        dry_run: bool = False,
    ) -> Deployment:
        """Record a deployment of `model` v`version` (queued for a worker); `dry_run`: only
        draft it. Refuses a non-deployer, bad input, files that fail their checks, a version
        that already serves there, and an endpoint or version another deployment holds."""
        with policy_checked():
            policy.check_deploy(self.actor, self.policy, "deploy")
        return self._deploy(
            model, version, endpoint, strategy, regions, file, dry_run, action="deploy"
        )

    def _deploy(
        self,
        model: str,
        version: str,
        endpoint: str | None,
        strategy: str | None,
        regions: list[str] | None,
        file: Path | None,
        dry_run: bool,
        action: str,
        **detail: Any,
    ) -> Deployment:
        """`deploy` once the actor's right to is checked; `action` and `detail` go to the
        audit record."""
        defaults = self.ws.settings.defaults
        if self.ws.settings.backends.serving != "local" and "regions" not in defaults:
            # Where the cloud serves, a deployment goes to the home region unless told.
            defaults = {**defaults, "regions": [self.ws.settings.aws.region]}
        spec = deployment_spec(defaults, file, endpoint, strategy, regions)
        mv = self.version(model, version)
        if mv.status is VersionStatus.RETIRED:
            # Retirement took it out of every place it was used; going back is a new version.
            raise BadRequest(
                f"{model} v{shown(version)} has been retired: register its files again (a new "
                "version) to deploy them"
            )
        if mv.library.container_only and not isinstance(self.ports.serving, VariantCalls):
            # Its golden data can only be checked on an endpoint variant (and only its
            # container serves it): refused before anything is recorded.
            raise BadRequest(
                f"{model} v{version} is a {mv.library} model: only SageMaker serving runs "
                "its container (set backends.serving: sagemaker)"
            )
        if spec.endpoint is None:
            spec = default_endpoint(model, spec, self.ports.serving.endpoints())
        assert spec.endpoint is not None
        try:
            check_files(self.ports.registry, mv, self.ws.scratch)
        except InvalidInput as exc:
            raise BadRequest(str(exc)) from None
        current = {r: self.ports.serving.get_endpoint(spec.endpoint, r) for r in spec.regions}
        try:
            check_endpoint(mv, spec.endpoint, spec, current)
        except InvalidInput as exc:
            # The endpoint as another deployment is leaving it (its candidate already serves
            # there, say): that deployment is what is in the way, so name it.
            raise BadRequest(self._busy_with(spec.endpoint) or str(exc)) from None
        d = self._draft(Kind.DEPLOY, model, version, spec.endpoint, spec, mv.library)
        if dry_run:
            return d
        audit = self._audit(
            action,
            d.id,
            model=model,
            version=shown(version),
            endpoint=spec.endpoint,
            strategy=d.strategy,
            **detail,
        )
        # Shared on the version: one version may go to two endpoints at once, but not while
        # it is being retired (the retirement holds it exclusively). Shared too on every
        # version serving there now: the rollout drains them, and its undo puts them back,
        # so none is retired before it ends (once drained, no endpoint lock keeps it).
        shared = [version_lock(model, version)]
        for v in _variants(current.values()):
            if version_lock(v.model, v.version) not in shared:
                shared.append(version_lock(v.model, v.version))
        try:
            return self.store.create(d, [endpoint_lock(spec.endpoint)], audit, shared=shared)
        except Busy as exc:
            raise BadRequest(busy_message(exc, self.store.get(exc.deployment_id))) from None

    def _busy_with(self, endpoint: str) -> str | None:
        """Why `endpoint` cannot take a deployment now, when an active one holds it."""
        query = DeploymentQuery(endpoint=endpoint, active_only=True, limit=1)
        for holder in self.store.deployments(query):
            return busy_message(Busy(endpoint_lock(endpoint), holder.id, holder.requested_by))
        return None

    def _draft(
        self,
        kind: Kind,
        model: str,
        version: str,
        endpoint: str,
        spec: DeploymentSpec,
        library: Library | None = None,
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
            library=library,
            requested_by=self.actor,
            created_at=now,
            updated_at=now,
            events=[Created(at=now, by=self.actor)],
        )

    # ------------------------------------------------------------ rollback

    def rollback(self, endpoint: str, strategy: str | None = None) -> Deployment:
        """Record a deployment that puts back the version that served on `endpoint` before
        its last successful deployment (all-at-once unless `strategy`), checked like `deploy`.
        Refuses when there is nothing to go back to: no successful deployment there, no
        endpoint before it, a retired or unregistered version, or the version serving now."""
        with policy_checked():
            policy.check_deploy(self.actor, self.policy, "roll back")
        succeeded = DeploymentQuery(
            endpoint=endpoint,
            kind=Kind.DEPLOY,
            states=frozenset({DeploymentState.SUCCEEDED}),
            limit=1,
        )
        found = self.store.deployments(succeeded)  # newest first: its endpoint lock orders them
        last = found[0] if found else None
        if last is None:
            raise BadRequest(f"nothing to roll back: no successful deployment on {endpoint}")
        what = f"{last.id} ({last.model} v{last.version})"
        before = served_before(last)
        if not before:
            raise BadRequest(f"nothing to roll back on {endpoint}: {what} changed no endpoint")
        if any(config is None for config in before.values()):
            raise BadRequest(
                f"nothing to roll back on {endpoint}: it did not exist before {what} created it"
            )
        previous = {region: main_variant(config) for region, config in before.items()}
        targets = {(v.model, v.version) for v in previous.values() if v is not None}
        if not targets:
            raise BadRequest(f"nothing to roll back on {endpoint}: nothing served before {what}")
        if len(targets) > 1:
            shown = ", ".join(
                f"{v.model} v{v.version} in {region}" for region, v in previous.items() if v
            )
            raise BadRequest(
                f"cannot roll back {endpoint}: its regions served different versions before "
                f"{what} ({shown}); deploy the one you want with `mmm deploy`"
            )
        model, version = targets.pop()
        target = f"{model} v{version}"
        try:
            status = self.ports.registry.get(model, version).status
        except NotFound:
            raise BadRequest(
                f"cannot roll back {endpoint} to {target}: it is no longer in the registry"
            ) from None
        if status is VersionStatus.RETIRED:
            raise BadRequest(f"cannot roll back {endpoint} to {target}: it has been retired")
        name = variant_name(model, version)
        for region in before:
            now = main_variant(self.ports.serving.get_endpoint(endpoint, region))
            if now is not None and now.name == name:
                raise BadRequest(
                    f"nothing to roll back on {endpoint}: {target}, which served before "
                    f"{last.id}, serves there now"
                )
        return self._deploy(
            model,
            version,
            endpoint,
            strategy or StrategyKind.ALL_AT_ONCE.value,
            sorted(before),
            None,
            False,
            action="rollback",
            undoes=last.id,
        )

    # ------------------------------------------------------------ approve, abort

    def _event(self, d: Deployment, ev: Approve | Abort, action: str, **detail: Any) -> Deployment:
        worker = self.worker()
        try:
            return worker.apply(d, ev, self._audit(action, d.id, **detail))
        except InvalidTransition as exc:
            raise BadRequest(str(exc)) from None

    def approve(self, ref: str, gate: str | None = None, seen: int | None = None) -> Deployment:
        """Pass the gate deployment `ref` waits at (only `gate`, if given; only while it has
        `seen` approvals, if given: what the approver was shown; else the gate, and the
        approvals, it has when read here). Refuses one that does not wait there, saying who
        moved it on, and an actor the policy does not let approve it (that refusal is
        audited)."""
        d = self.get(ref)
        if d.state is not DeploymentState.WAITING_APPROVAL:
            raise BadRequest(not_waiting(d))
        try:
            with policy_checked():
                policy.check_approve(self.actor, d, self.policy, self._owner(d))
        except PermissionDenied as exc:
            self.store.audit(self._audit("approve_refused", d.id, reason=str(exc)))
            raise
        # The gate as it is now, with the approvals it has: if someone saves first, the
        # approval is decided again on their record, and it must not pass a later gate.
        gate = gate or d.waiting_at
        seen = len(d.approvals) if seen is None else seen
        try:
            return self._event(
                d,
                Approve(at=self.clock(), by=self.actor, gate=gate, seen=seen),
                "approve",
                gate=d.waiting_at,
            )
        except BadRequest:  # the gate asked for has passed, or someone else's change won
            lost = overtaken(self.get(d.id), str(gate))
            self.store.audit(self._audit("approve_refused", d.id, reason=lost))
            raise BadRequest(lost) from None

    def abort(self, ref: str, reason: str | None = None) -> Deployment:
        """Stop deployment `ref` and have what it changed undone, in reverse. Refuses one that
        has ended, and an actor the policy does not let abort it; the refusal of an abort
        that lost a race is audited."""
        d = self.get(ref)
        if not d.active:
            raise BadRequest(not_abortable(d))
        with policy_checked():
            policy.check_abort(self.actor, d, self.policy)
        try:
            return self._event(
                d,
                Abort(at=self.clock(), by=self.actor, reason=reason),
                "abort",
                reason=reason or "",
            )
        except BadRequest:  # someone else's abort, or the end, went first
            lost = not_abortable(self.get(d.id))
            self.store.audit(self._audit("abort_refused", d.id, reason=lost))
            raise BadRequest(lost) from None

    # ------------------------------------------------------------ retire

    def retire(self, model: str, version: str | None = None, force: bool = False) -> Deployment:
        """Record the retirement of `model` v`version` (all versions when None) from every
        place it is used. Refuses a non-deployer, an unknown model or version, and a version
        that still takes live traffic unless `force` (an admin's right)."""
        with policy_checked():
            policy.check_deploy(self.actor, self.policy, "retire")
            if force:
                policy.check_force(self.actor, self.policy)
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
        configs = self.ports.serving.endpoints()
        refused = still_live(configs, names, f"{model} v{version}" if version else model)
        if refused and not force:
            raise BadRequest(refused)
        endpoints = {c.name for c in holding(configs, names)}
        spec = DeploymentSpec(endpoint=None)
        d = self._draft(Kind.RETIRE, model, version or EVERY_VERSION, "-", spec)
        d.context.versions = versions
        d.force = force
        # Exclusive on the versions (no deployment of them meanwhile) and on every endpoint
        # they are on, like a deployment there: a rollout and a retirement never interleave.
        # The endpoints first: a refusal names the endpoint's rollout as the one in the way.
        locks = [endpoint_lock(e) for e in sorted(endpoints)]
        locks += [version_lock(model, v) for v in versions]
        audit = self._audit(
            "retire", d.id, model=model, versions=[shown(v) for v in versions], force=force
        )
        try:
            return self.store.create(d, locks, audit)
        except Busy as exc:
            raise BadRequest(busy_message(exc, self.store.get(exc.deployment_id))) from None
