"""The service's refusals: one line for the user, and the exit status the CLI gives them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from core.domain import Deployment, Kind
from core.policy import Denied
from core.store import Busy


class ServiceError(Exception):
    """A request was refused; the message is one line for the user."""

    exit_code = 1


class BadRequest(ServiceError):
    """Bad input, or a request that cannot be carried out now (exit 2)."""

    exit_code = 2


class PermissionDenied(ServiceError):
    """The policy refuses the actor (exit 3)."""

    exit_code = 3


class WaitTimeout(ServiceError):
    """The time to wait ran out while the deployment was still going (exit 1, like
    `kubectl rollout status`)."""


@contextmanager
def policy_checked() -> Iterator[None]:
    """Turn core.policy's refusal into PermissionDenied."""
    try:
        yield
    except Denied as exc:
        raise PermissionDenied(str(exc)) from None


def busy_message(exc: Busy, holding: Deployment | None = None) -> str:
    """Why the store refused a new deployment or retirement: who holds the lock (`holding`:
    that deployment, when it could be read)."""
    kind, _, what = exc.lock.partition(":")
    doing = "retired" if exc.deployment_id.startswith("ret-") else "deployed"
    holder = f"{exc.deployment_id} (started by {exc.requested_by})"
    if kind == "version":
        model, _, version = what.rpartition(":")
        subject = f"{model} v{version} is being {doing} by {holder}"
        # A deployment of another version holds it: it serves where that one goes now.
        if (
            holding is not None
            and holding.kind is Kind.DEPLOY
            and (holding.model, holding.version) != (model, version)
        ):
            subject = (
                f"{model} v{version} is being replaced on {holding.endpoint} by {holder}, "
                "which puts it back if undone"
            )
    else:
        subject = f"endpoint {what} is busy: {holder} is still active"
    return f"{subject}; wait for it, or abort it"
