"""What the bot does once a request is acked: one function per command or button. Each parses
nothing Slack-specific itself, calls the same service methods as the CLI, and answers only
the user who asked; the deployment's channel message is the notifier's to post and update.

Acting needs a Slack user mapped to an mmm identity; a request that acts counts once,
however often Slack delivers it (its trigger id is claimed in the store) and however often
its button is clicked (the button carries what it was shown for).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.domain import Deployment
from core.service import BadRequest, PermissionDenied, ServiceError
from core.store import DeploymentQuery
from mmm_bot import blocks
from mmm_bot.blocks import Message
from mmm_bot.bot import Bot, Origin
from mmm_bot.grammar import (
    ACTING,
    USAGE,
    Abort,
    Approve,
    Deploy,
    Help,
    Request,
    Retire,
    Status,
    UsageError,
    parse,
)

log = logging.getLogger("mmm.bot")

_STATUS_PAGE = 15
_REASON_MAX = 300


@contextmanager
def _answering(
    bot: Bot, origin: Origin, verb: str, target: str, usage: str | None = None
) -> Iterator[None]:
    """Turn a refusal into a one-line answer for the user alone (with the usage, for bad
    input). A refusal of policy that the service did not audit is audited here."""
    try:
        yield
    except PermissionDenied as exc:
        if verb != "approve":  # the service audits refused approvals itself
            bot.audit_refusal(origin, verb, target, str(exc))
        bot.respond(origin, _reply(f"Refused: {exc}"))
    except BadRequest as exc:
        line = f"{str(exc).rstrip('.')}. Usage: {usage}" if usage else str(exc)
        bot.respond(origin, _reply(line))
    except ServiceError as exc:
        bot.respond(origin, _reply(str(exc)))
    except Exception:
        log.exception("%s from Slack failed", verb)
        bot.respond(origin, _reply(f"{verb} failed on the mmm side; see the bot's log"))


def _reply(text: str) -> Message:
    """A one-line answer: what the request carried (a word of the command, a user id, a
    name in a refusal) may hold line breaks or characters that hide or reorder text; they
    are shown escaped."""
    return blocks.reply(
        "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    )


def _verb(request: Request) -> str:
    return type(request).__name__.lower()


def _unmapped(bot: Bot, origin: Origin, verb: str, target: str) -> None:
    reason = "Slack user not mapped to an mmm identity"
    bot.audit_refusal(origin, verb, target, reason)
    bot.respond(
        origin,
        _reply(
            f"Refused: you ({origin.user.user_id}) may read but not {verb}: your Slack user "
            "is not mapped to an mmm identity (ask an admin to add it under slack.users)"
        ),
    )


def refuse_foreign(bot: Bot, origin: Origin, target: str) -> None:
    """A request from another Slack workspace than `slack.team_id`: audited, answered with
    why, nothing read or done."""
    reason = bot.foreign(origin) or ""
    bot.audit_refusal(origin, "request", target, reason)
    bot.respond(origin, _reply(f"Refused: {reason}"))


# ---------------------------------------------------------------- /mmm


def run_command(bot: Bot, origin: Origin, text: str) -> None:
    """`/mmm ...`: parse, check who may, act, answer."""
    try:
        request = parse(text)
    except UsageError as exc:
        bot.respond(origin, _reply(str(exc)))
        return
    verb = _verb(request)
    if isinstance(request, ACTING):
        if origin.user.identity is None:
            _unmapped(bot, origin, verb, text.strip())
            return
        if not bot.claim(f"request:{origin.key}"):
            log.info("a repeat of Slack request %s: already handled", origin.key)
            return
    with _answering(bot, origin, verb, text.strip(), USAGE[verb]):
        answer = _carry_out(bot, origin, request)
        if answer is not None:
            bot.respond(origin, answer)


def _carry_out(bot: Bot, origin: Origin, request: Request) -> Message | None:
    if isinstance(request, Help):
        return blocks.help_message()
    if isinstance(request, Status):
        return _status(bot, request.ref)
    svc = bot.service(origin.user)
    if isinstance(request, Deploy):
        with bot.announcing():
            d = svc.deploy(request.model, request.version, request.endpoint, request.strategy)
            if origin.channel:
                bot.announce(d.id, origin.channel)
        return _reply(_queued(bot, d, "its progress is in this channel"))
    if isinstance(request, Approve):
        d = svc.approve(request.ref)
        return _reply(f"{d.id} approved by {svc.actor} at gate {d.approvals[-1].gate}")
    if isinstance(request, Abort):
        d = svc.get(request.ref)
        if not d.active:
            raise BadRequest(f"{d.id} has already ended ({d.state.value})")
        preview = svc.preview_abort(d.id)
        if not preview.possible:
            raise BadRequest(f"{d.id} cannot be aborted: {preview.reason}")
        return blocks.abort_prompt(d, preview, _nonce(request.reason))
    assert isinstance(request, Retire)
    removal = svc.preview_retire(request.model, request.version)
    if removal.refused:
        raise BadRequest(removal.refused)
    return blocks.retire_prompt(request.model, request.version, removal, _nonce(None))


def _nonce(reason: str | None) -> str:
    """A one-shot token for a confirmation button (its reason, if any, rides along)."""
    token = uuid.uuid4().hex[:16]
    # A button's value holds 2,000 characters at most: a reason longer than a line is cut.
    return f"{token}:{reason[:_REASON_MAX]}" if reason else token


def _status(bot: Bot, ref: str | None) -> Message:
    svc = bot.reader()
    if ref is not None:
        return blocks.status_message(svc.get(ref), bot.settings)
    items, total = svc.page(DeploymentQuery(limit=_STATUS_PAGE))
    return blocks.status_list(items, total, _STATUS_PAGE)


def _queued(bot: Bot, d: Deployment, where: str) -> str:
    line = f"{d.id} queued: {blocks.plain_title(d)}; {where}"
    if not bot.base.worker_running():
        line += " (no worker is running: `mmm up` or `mmm worker` carries it out)"
    return line


# ---------------------------------------------------------------- buttons


def _acting_user(bot: Bot, origin: Origin, verb: str, target: str) -> bool:
    """The clicker may act; refuses (to them alone) and returns False when not."""
    if origin.user.identity is None:
        _unmapped(bot, origin, verb, target)
        return False
    return bot.claim(f"request:{origin.key}")


def click_approve(bot: Bot, origin: Origin, value: dict[str, Any]) -> None:
    """The Approve button of a deployment's message: passes the gate it was shown for, once."""
    ref = str(value.get("id", ""))
    if not _acting_user(bot, origin, "approve", ref):
        return
    with _answering(bot, origin, "approve", ref):
        svc = bot.service(origin.user)
        d = svc.get(ref)
        gate, seen = value.get("gate"), value.get("approvals")
        if d.waiting_at != gate or len(d.approvals) != seen:
            # A second click, or a click on a message that is behind: that gate has passed.
            bot.respond(origin, _reply(_passed(d, str(gate))))
            return
        try:
            d = svc.approve(d.id, str(gate), seen if isinstance(seen, int) else None)
        except BadRequest:
            # Someone else's click got there first; say who, rather than how the core saw it.
            bot.respond(origin, _reply(_passed(svc.get(d.id), str(gate))))
            return
        bot.respond(origin, _reply(f"{d.id}: you approved it at gate {gate}"))


def _passed(d: Deployment, gate: str) -> str:
    """Why a click on `gate`'s Approve did nothing: who approved it, or who stopped it."""
    last = next((a for a in reversed(d.approvals) if a.gate == gate), None)
    why = [f"{last.by} approved it"] if last is not None else []
    if d.end_reason is not None and d.error:  # e.g. "aborted by carol: wrong endpoint"
        why.append(d.error)
    if why:
        return f"{d.id} no longer waits at gate {gate}: {'; then '.join(why)}"
    return f"{d.id} no longer waits at gate {gate} (it is {d.state.value})"


def click_abort(bot: Bot, origin: Origin, value: dict[str, Any]) -> None:
    """The Abort button of a deployment's message (Slack asked for confirmation already)."""
    ref = str(value.get("id", ""))
    if not _acting_user(bot, origin, "abort", ref):
        return
    _abort(bot, origin, ref, None, replace=False)


def confirm_abort(bot: Bot, origin: Origin, value: dict[str, Any]) -> None:
    """The button under `/mmm abort ID`'s preview: aborts once, however often clicked."""
    ref = str(value.get("id", ""))
    if not _acting_user(bot, origin, "abort", ref):
        return
    nonce = str(value.get("nonce", ""))
    if not bot.claim(f"confirm:{nonce}"):
        return
    reason = nonce.partition(":")[2] or None
    _abort(bot, origin, ref, reason, replace=True)


def _abort(bot: Bot, origin: Origin, ref: str, reason: str | None, replace: bool) -> None:
    with _answering(bot, origin, "abort", ref):
        svc = bot.service(origin.user)
        d = svc.get(ref)
        if not d.active or d.end_reason is not None:
            why = f": {d.error}" if d.error else ""
            bot.respond(origin, _reply(f"{d.id} is already {_ending(d)}{why}"), replace)
            return
        d = svc.abort(d.id, reason)
        bot.respond(
            origin,
            _reply(f"{d.id}: aborted by {svc.actor}; undoing what it changed"),
            replace,
        )


def _ending(d: Deployment) -> str:
    return d.state.value if not d.active else "being undone"


def confirm_retire(bot: Bot, origin: Origin, value: dict[str, Any]) -> None:
    """The button under `/mmm retire`'s preview: records the retirement once."""
    model = str(value.get("model", ""))
    version = value.get("version")
    if not _acting_user(bot, origin, "retire", model):
        return
    if not bot.claim(f"confirm:{value.get('nonce', '')}"):
        return
    with _answering(bot, origin, "retire", model, USAGE["retire"]):
        svc = bot.service(origin.user)
        with bot.announcing():
            d = svc.retire(model, None if version is None else str(version))
            if origin.channel:
                bot.announce(d.id, origin.channel)
        bot.respond(origin, _reply(_queued(bot, d, "its progress is in this channel")), True)
