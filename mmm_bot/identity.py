"""Who a Slack user is in mmm (`slack.users` in mmm.yaml), and a service acting as them.

A Slack user id arrives in a request whose signature Slack made, so unlike the CLI's
`--as` it can be trusted; `slack.users` maps it to the mmm identity that policy, four-eyes
and the audit history know. A user with no mapping may read but not act.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.service import Service
from core.spec import SlackSettings


@dataclass(frozen=True)
class SlackUser:
    """The Slack user of a request, and their mmm identity (None: not mapped)."""

    user_id: str
    identity: str | None

    @property
    def mention(self) -> str:
        return f"<@{self.user_id}>"


def slack_user(settings: SlackSettings, user_id: str) -> SlackUser:
    """The Slack user `user_id` with the identity `slack.users` gives them."""
    return SlackUser(user_id=user_id, identity=settings.users.get(user_id))


def slack_ids(settings: SlackSettings, identity: str) -> list[str]:
    """The Slack users mapped to `identity` (to mention them in a message)."""
    return [uid for uid, name in settings.users.items() if name == identity]


def shown_identity(settings: SlackSettings, identity: str) -> str:
    """`identity` as a message shows it: the name, with a mention of its Slack user if any."""
    ids = slack_ids(settings, identity)
    return f"{identity} (<@{ids[0]}>)" if ids else identity


class SlackService(Service):
    """The service acting as a mapped Slack user: every audit record it writes names the
    Slack user id beside the mmm identity."""

    def __init__(self, base: Service, user: SlackUser) -> None:
        if user.identity is None:
            raise ValueError(f"Slack user {user.user_id} has no mmm identity")
        super().__init__(
            base.ws,
            base.store,
            base.ports,
            user.identity,
            clock=base.clock,
            audit_detail={"slack_user": user.user_id},
        )
        self.slack_user_id = user.user_id
