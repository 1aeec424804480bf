"""The Slack bot's request path with hostile input: `/mmm` command text and button clicks
(interaction payloads), signed with the signing secret as Slack signs them and sent over
HTTP to the bot `mmm up` runs (tests/bot/harness.py; no worker, so what is accepted stays
queued and every example sees the same deployments).

Every request is answered 200 (404 for an action the bot has no listener for, bolt's; 400
for a signed body Slack never sends), never 5xx; its answer, if any, goes to the sender
alone in one line; nothing is
logged with a traceback ("failed on the mmm side" is one); a request that is refused
changes no deployment and adds nothing to the audit history but a record of the refusal;
nothing is written outside the workspace.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from hypothesis import strategies as st

from core.domain import Deployment
from mmm_bot.blocks import ABORT, ABORT_CONFIRMED, APPROVE, RETIRE_CONFIRMED
from tests.bot.harness import (
    BOT_TOKEN,
    SIGNING_SECRET,
    USERS,
    BotHarness,
    copy_workspace,
    make_template,
)
from tests.fuzz import hostile
from tests.fuzz.support import changed_outside, fast_and_slow, logged, one_line, ran, tree
from tests.support.fake_slack import FakeSlack, action_body, command_body, signed_headers

HELD = "held-endpoint"
_ENDPOINT = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_MODEL = re.compile(r"^[A-Za-z0-9]+([-_][A-Za-z0-9]+)*$")


@dataclass
class Bot:
    root: Path
    harness: BotHarness
    slack: FakeSlack
    queued: Deployment  # on HELD, requested by the service's own actor
    names: Iterator[int]

    @property
    def home(self) -> Path:
        return self.harness.home


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    # The template lives apart: its registry's connection may still write there when it is
    # collected, which is no request's doing.
    template = make_template(tmp_path_factory.mktemp("fuzz-slack-template"))
    root = tmp_path_factory.mktemp("fuzz-slack")
    home = copy_workspace(template, root / "ws")
    with FakeSlack(token=BOT_TOKEN) as slack:
        harness = BotHarness(home, slack, worker=False)
        try:
            queued = harness.svc.deploy("churn", "1", HELD)
            yield Bot(root, harness, slack, queued, itertools.count())
        finally:
            harness.close()


# ---------------------------------------------------------------- strategies

USER_IDS = st.one_of(
    st.sampled_from(list(USERS)),
    st.sampled_from([*USERS, "UNOBODY"]),
    hostile.hostile_text(surrogates=False, huge=False),
)
WORDS = st.one_of(
    st.sampled_from(["churn", "1", "2", HELD, "fresh-ep", "--strategy", "--strategy=shadow",
                     "blue-green", "QUEUED", "QUEUED[:6]", '"', "'", "--force",
                     '"--a\nb"', "'x\ry'", '"\u202eabc"']),
    hostile.hostile_text(),
)  # fmt: skip


@st.composite
def command_texts(draw: st.DrawFn) -> str:
    """What follows `/mmm`: a verb (known, near one, or not) and hostile words."""
    verb = draw(
        st.one_of(
            st.sampled_from(["deploy", "status", "approve", "abort", "retire", "help"]),
            st.sampled_from(["DEPLOY", "Status", "", "launch", "deploy\n", "--help"]),
            hostile.hostile_text(huge=False),
        )
    )
    words = draw(st.lists(WORDS, max_size=5))
    sep = draw(st.sampled_from([" ", " ", "\t", "  ", "\n", "\u00a0"]))
    if draw(st.booleans()):  # a well-formed command with one slot that may be hostile
        valid = st.one_of(
            st.from_regex(hostile.ENDPOINT_RE, fullmatch=True),
            st.sampled_from(["1", "churn", "QUEUED"]),
        )
        slot = draw(st.one_of(valid, WORDS))
        form = draw(
            st.sampled_from(
                ["deploy churn 1 {}", "deploy churn 1 {}", "deploy churn {} fresh-ep",
                 "deploy {} 1 fresh-ep",
                 "deploy churn 1 fresh-ep --strategy {}", "abort QUEUED {}", "abort {}",
                 "approve {}", "status {}", "retire churn {}", "retire {}"]
            )
        )  # fmt: skip
        return form.format(slot if " " not in slot else repr(slot))
    return sep.join([verb, *words])


def button_values() -> st.SearchStrategy[str]:
    """What a button carries: ours (with the queued id), near ours, or anything."""
    ours = st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.just("QUEUED"), hostile.hostile_text(huge=False), hostile.values()),
            "gate": st.one_of(st.sampled_from(hostile.GATES), hostile.values()),
            "approvals": st.one_of(st.integers(-1, 3), hostile.values()),
            "nonce": st.one_of(st.text(max_size=40), hostile.values()),
            "model": st.one_of(st.just("churn"), hostile.values()),
            "version": st.one_of(st.sampled_from(["1", 1, "2"]), hostile.values()),
        },
    )
    return st.one_of(
        ours.map(json.dumps),
        st.builds(json.dumps, hostile.values()),
        hostile.hostile_text(),
        st.sampled_from(["", "null", "[]", "{", "NaN", '{"id": NaN}']),
    )


ACTIONS = st.one_of(
    st.sampled_from([APPROVE, ABORT, ABORT_CONFIRMED, RETIRE_CONFIRMED]),
    st.sampled_from(["mmm_other", "", "mmm_approve "]),
)


@st.composite
def interaction_bodies(draw: st.DrawFn) -> bytes:
    """A click as Slack posts it, a click with parts of the wrong type or missing, or a
    body that is no interaction at all: each signed."""
    kind = draw(st.integers(0, 4))
    response = "RESPONSE_URL"
    if kind <= 1:
        return action_body(
            draw(ACTIONS), draw(button_values()), draw(USER_IDS), "C0DEPLOY", "1.000000", response
        )
    if kind == 2:  # the same shape with fields replaced by hostile values
        payload = json.loads(
            urlencode_payload(
                action_body(draw(ACTIONS), "{}", "UBOB", "C0DEPLOY", "1.000000", response)
            )
        )
        for key in draw(st.lists(st.sampled_from(sorted(payload)), max_size=3)):
            payload[key] = draw(hostile.values())
        if draw(st.booleans()) and isinstance(payload.get("actions"), list):
            payload["actions"] = [draw(hostile.values())]
        return urlencode({"payload": json.dumps(payload)}).encode()
    if kind == 3:  # the payload itself is not JSON, or not an object
        text = draw(st.one_of(hostile.hostile_text(), st.builds(json.dumps, hostile.values())))
        return urlencode({"payload": text}).encode()
    return draw(
        st.one_of(
            st.binary(max_size=200),
            st.sampled_from([b"", b"payload=", b"command=%2Fmmm", b"\xff\xfe", b"a=b&a=c"]),
            st.builds(lambda t: command_body(t, "UBOB", command="/other"),
                      hostile.hostile_text(huge=False)),
        )
    )  # fmt: skip


def urlencode_payload(body: bytes) -> str:
    return parse_qs(body.decode())["payload"][0]


# ---------------------------------------------------------------- the property


def _store(b: Bot) -> dict[str, Any]:
    svc = b.harness.svc
    return {  # a few dozen deployments at most: well under what `deployments()` lists
        "deployments": {d.id: d.model_dump_json() for d in svc.deployments()},
        "audit": [r.model_dump_json() for r in svc.audit_log()],
        "versions": sorted(v.model_dump_json() for v in svc.ports.registry.versions()),
    }


def _settle(b: Bot) -> None:
    """Wait for the work acked to end (the bot acks first and works after)."""
    b.slack.wait_for(lambda: b.harness.bot.bot.busy == 0, 60, "the bot's work")  # type: ignore[attr-defined]


def _fill(b: Bot, raw: bytes, answer: str) -> bytes:
    """The placeholders made real (a form value may hold ':' and '/' as they are)."""
    queued = b.queued.id.encode()
    raw = raw.replace(b"QUEUED%5B%3A6%5D", queued[:6]).replace(b"QUEUED[:6]", queued[:6])
    return raw.replace(b"QUEUED", queued).replace(b"RESPONSE_URL", answer.encode())


def send(b: Bot, body: bytes, target: str) -> None:
    name = f"fuzz-{next(b.names)}"
    url = b.slack.response_url(name)
    body = _fill(b, body, url)
    before = _store(b)
    outside = tree(b.root, skip=(b.home,))
    with logged() as records:
        response = b.harness.http.post(
            b.harness.events_url, content=body, headers=signed_headers(SIGNING_SECRET, body)
        )
        _settle(b)
    after = _store(b)
    assert response.status_code < 500, (response.status_code, response.text[:300])
    # 404: no listener for that action (bolt); 400: signed, but no body Slack sends
    assert response.status_code in (200, 400, 404), (response.status_code, response.text[:300])
    tracebacks = [r for r in records if r.exc_info or "failed on the mmm side" in r.getMessage()]
    assert not tracebacks, [(r.getMessage(), r.exc_info) for r in tracebacks][:3]
    assert changed_outside(outside, tree(b.root, skip=(b.home,))) == []
    answers = b.slack.answers(name)
    assert len(answers) <= 1, answers
    for answer in answers:
        assert answer.get("response_type") == "ephemeral", answer
        one_line(str(answer.get("text", "")), "the answer")
        assert "failed on the mmm side" not in str(answer), answer
    new = set(after["deployments"]) - set(before["deployments"])
    for id_ in new:  # accepted: a deployment (or retirement) valid by the rules
        d = json.loads(after["deployments"][id_])
        assert _MODEL.match(d["model"]), d
        assert d["kind"] == "retire" or _ENDPOINT.match(d["endpoint"]), d
        assert d["requested_by"] in USERS.values(), d
    added = after["audit"][: len(after["audit"]) - len(before["audit"])]
    if after["deployments"] == before["deployments"]:
        refusals = [json.loads(r) for r in added]
        assert all(r["action"].endswith("_refused") for r in refusals), refusals
    ran(target, bool(new) or after["deployments"] != before["deployments"])


def check_command(bot: Bot, text: str, user: str) -> None:
    body = command_body(text, user, "C0DEPLOY", "RESPONSE_URL", f"trigger-{time.monotonic_ns()}")
    send(bot, body, "slack /mmm command")


def interaction_payload(bot: Bot, body: bytes) -> None:
    send(bot, body, "slack interaction payload")


test_command_text, test_command_text_slow = fast_and_slow(
    check_command, 30, 250, text=command_texts(), user=USER_IDS
)
test_interaction_payload, test_interaction_payload_slow = fast_and_slow(
    interaction_payload, 30, 250, body=interaction_bodies()
)


def test_unsigned_or_stale_requests_get_401(bot: Bot) -> None:
    body = command_body("deploy churn 1 other-ep", "UALICE", "C0DEPLOY", "")
    stale = signed_headers(SIGNING_SECRET, body, at=time.time() - 3600)
    # bolt's own check raises on a timestamp that is no number (a 500, before any secret)
    odd = {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00"}
    for headers in ({}, stale, signed_headers("not-the-secret", body), odd):
        for content in (body, b"payload=..%2Fx", b"\xff"):
            answer = httpx.post(
                bot.harness.events_url, content=content, headers=headers, timeout=30
            )
            assert answer.status_code == 401, (headers, content, answer.text)


def test_valid_requests_pass_the_same_checks(bot: Bot) -> None:
    """The properties see both outcomes: a deployment from Slack, then an abort click."""
    check_command(bot, "deploy churn 1 fresh-ep", "UALICE")
    d = next(d for d in bot.harness.svc.deployments() if d.endpoint == "fresh-ep")
    assert d.requested_by == "alice" and d.state.value == "queued"
    value = json.dumps({"id": d.id})
    send(
        bot,
        action_body(ABORT, value, "UBOB", "C0DEPLOY", "1.000000", "RESPONSE_URL"),
        "slack interaction payload",
    )
    assert bot.harness.svc.get(d.id).end_reason is not None
