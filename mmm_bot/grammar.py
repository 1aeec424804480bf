"""The words after `/mmm`, parsed into one typed request; anything else is a UsageError whose
one line ends with the usage of the command that was meant (or of all of them)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

COMMAND = "/mmm"

USAGE: dict[str, str] = {
    "deploy": f"{COMMAND} deploy MODEL VERSION [ENDPOINT] [--strategy all-at-once|blue-green|shadow]",
    "status": f"{COMMAND} status [ID]",
    "approve": f"{COMMAND} approve ID",
    "abort": f"{COMMAND} abort ID [REASON]",
    "retire": f"{COMMAND} retire MODEL [VERSION]",
    "help": f"{COMMAND} help",
}


class UsageError(ValueError):
    """The request cannot be read; the message is one line with the usage."""


@dataclass(frozen=True)
class Deploy:
    model: str
    version: str  # as the user typed it: the registry names versions ("3", "1.1.0")
    endpoint: str | None = None
    strategy: str | None = None


@dataclass(frozen=True)
class Status:
    ref: str | None = None


@dataclass(frozen=True)
class Approve:
    ref: str


@dataclass(frozen=True)
class Abort:
    ref: str
    reason: str | None = None


@dataclass(frozen=True)
class Retire:
    model: str
    version: str | None = None


@dataclass(frozen=True)
class Help:
    pass


Request = Deploy | Status | Approve | Abort | Retire | Help

# Requests that change something: only a Slack user mapped to an mmm identity may make them.
ACTING = (Deploy, Approve, Abort, Retire)


def _usage_error(problem: str, verb: str | None) -> UsageError:
    usage = USAGE[verb] if verb else "; ".join(USAGE.values())
    return UsageError(f"{problem}. Usage: {usage}")


def parse(text: str) -> Request:
    """The request in `text` (what follows `/mmm`); raises UsageError."""
    try:
        words = shlex.split(text)
    except ValueError as exc:  # an unclosed quote
        raise _usage_error(f"cannot read the command ({exc})", None) from None
    if not words:
        return Help()
    verb, args = words[0].lower(), words[1:]
    if verb not in USAGE:
        raise _usage_error(f"unknown command {words[0]!r}", None)
    if verb == "deploy":
        return _deploy(args)
    if verb == "abort":
        if not args:
            raise _usage_error("abort needs a deployment id", verb)
        return Abort(ref=args[0], reason=" ".join(args[1:]) or None)
    positional = _positional(args, verb)
    if verb == "help":
        _arity(positional, 0, 0, verb)
        return Help()
    if verb == "status":
        _arity(positional, 0, 1, verb)
        return Status(ref=positional[0] if positional else None)
    if verb == "approve":
        _arity(positional, 1, 1, verb)
        return Approve(ref=positional[0])
    _arity(positional, 1, 2, verb)
    return Retire(model=positional[0], version=positional[1] if len(positional) > 1 else None)


def _positional(args: list[str], verb: str) -> list[str]:
    for word in args:
        if word.startswith("--"):
            raise _usage_error(f"unknown option {word}", verb)
    return args


def _arity(args: list[str], least: int, most: int, verb: str) -> None:
    if len(args) < least:
        raise _usage_error(f"{verb} needs more arguments", verb)
    if len(args) > most:
        raise _usage_error(f"too many arguments for {verb}", verb)


def _deploy(args: list[str]) -> Deploy:
    positional: list[str] = []
    strategy: str | None = None
    words = iter(args)
    for word in words:
        if word == "--strategy":
            strategy = next(words, None)
            if strategy is None:
                raise _usage_error("--strategy needs a value", "deploy")
        elif word.startswith("--strategy="):
            strategy = word.partition("=")[2]
        elif word.startswith("--"):
            raise _usage_error(f"unknown option {word}", "deploy")
        else:
            positional.append(word)
    _arity(positional, 2, 3, "deploy")
    endpoint = positional[2] if len(positional) > 2 else None
    return Deploy(model=positional[0], version=positional[1], endpoint=endpoint, strategy=strategy)
