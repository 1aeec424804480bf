"""Reading `/mmm ...`: typed requests, one-line usage errors; versions stay as typed."""

from __future__ import annotations

import pytest

from mmm_bot.grammar import Abort, Approve, Deploy, Help, Retire, Status, UsageError, parse


@pytest.mark.parametrize(
    ("text", "request_"),
    [
        ("", Help()),
        ("help", Help()),
        ("deploy churn 3", Deploy("churn", "3")),
        ("deploy churn 1.1.0 churn-scorer", Deploy("churn", "1.1.0", "churn-scorer")),
        ("deploy churn 03 --strategy shadow", Deploy("churn", "03", None, "shadow")),
        ("DEPLOY churn 2 ep --strategy=blue-green", Deploy("churn", "2", "ep", "blue-green")),
        ("status", Status()),
        ("status dep-1", Status("dep-1")),
        ("approve dep-1", Approve("dep-1")),
        ("abort dep-1", Abort("dep-1")),
        ('abort dep-1 "bad model" now', Abort("dep-1", "bad model now")),
        ("retire churn", Retire("churn")),
        ("retire churn 1.1.0", Retire("churn", "1.1.0")),
    ],
)
def test_requests(text: str, request_: object) -> None:
    assert parse(text) == request_


@pytest.mark.parametrize(
    ("text", "usage"),
    [
        ("deploy", "/mmm deploy MODEL VERSION"),
        ("deploy a b c d", "/mmm deploy MODEL VERSION"),
        ("deploy a 1 --strategy", "/mmm deploy MODEL VERSION"),
        ("status a b", "/mmm status [ID]"),
        ("approve", "/mmm approve ID"),
        ("retire", "/mmm retire MODEL [VERSION]"),
        ("retire a 1 --force", "/mmm retire MODEL [VERSION]"),
        ("help me", "/mmm help"),
        ("launch", "/mmm deploy"),
        ('deploy "churn', "/mmm deploy"),
    ],
)
def test_usage_errors_are_one_line_with_the_usage(text: str, usage: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    message = str(caught.value)
    assert "Usage: " in message and usage in message and "\n" not in message
