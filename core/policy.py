"""Who may do what: pure functions of (actor, deployment or model, policy settings, owner).

The `check_*` functions raise `Denied` with one line for the user (the service turns it into
PermissionDenied, exit 3); `can_approve` answers the same question without raising, for a
front end that greys out what the actor may not do. Empty lists in `policy` mean "anyone".
A CLI user name is self-declared (`--as`), see the README.
"""

from __future__ import annotations

from core.domain import Deployment
from core.spec import Policy


class Denied(Exception):
    """The policy refuses the actor; the message is one line for the user."""


def check_deploy(actor: str, policy: Policy, verb: str = "deploy") -> None:
    """Deployers (and admins) may deploy, retire and roll back; anyone when none are named."""
    if policy.deployers and actor not in [*policy.deployers, *policy.admins]:
        raise Denied(f"{actor} may not {verb} (policy.deployers)")


def approvers_for(model: str, owner: str | None, policy: Policy) -> list[str] | None:
    """Who may approve a deployment of `model` owned by team `owner`: the first of
    `policy.approvers[model]`, `[team:<owner>]`, `["*"]` that is set, plus the admins.
    None: no list applies (anyone but the requester, unless self-approval is allowed)."""
    for key in (model, f"team:{owner}" if owner else None, "*"):
        if key and key in policy.approvers:
            return list(policy.approvers[key]) + list(policy.admins)
    return None


def check_approve(actor: str, d: Deployment, policy: Policy, owner: str | None) -> None:
    """Four-eyes (the requester may not approve unless `policy.allow_self_approval`), then
    the approvers of the model or its owner team."""
    if d.requested_by == actor and not policy.allow_self_approval:
        raise Denied(
            f"{actor} cannot approve {d.id}: they requested it "
            "(four-eyes; policy.allow_self_approval changes this)"
        )
    allowed = approvers_for(d.model, owner, policy)
    if allowed is not None and actor not in allowed:
        raise Denied(
            f"{actor} cannot approve {d.id}: approvers are {', '.join(allowed) or 'nobody'}"
        )


def can_approve(actor: str, d: Deployment, policy: Policy, owner: str | None) -> bool:
    """Whether `check_approve` lets `actor` approve `d` (whatever state `d` is in)."""
    try:
        check_approve(actor, d, policy, owner)
    except Denied:
        return False
    return True


def check_abort(actor: str, d: Deployment, policy: Policy) -> None:
    """The requester, deployers, approvers and admins may abort; anyone when no deployers
    are named."""
    allowed = {d.requested_by, *policy.deployers, *policy.admins}
    for names in policy.approvers.values():
        allowed.update(names)
    if policy.deployers and actor not in allowed:
        raise Denied(f"{actor} may not abort {d.id}")


def check_force(actor: str, policy: Policy) -> None:
    """Forcing a retirement takes live traffic away: an admin's right, and only named admins
    have it (with no admins named, nobody may force)."""
    if not policy.admins:
        raise Denied(
            "--force needs an admin, and none is named: list admins under policy.admins in mmm.yaml"
        )
    if actor not in policy.admins:
        raise Denied(
            f"{actor} may not force a retirement (policy.admins: {', '.join(policy.admins)})"
        )
