"""Where a request came from, read from the body Slack signed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mmm_bot.bot import Bot, Origin


def request_key(body: dict[str, Any]) -> str:
    """What stays the same when Slack delivers one request again: its trigger id (present on
    slash commands and button clicks), or else a digest of the body."""
    trigger = body.get("trigger_id")
    if isinstance(trigger, str) and trigger:
        return trigger
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def origin_of(bot: Bot, body: dict[str, Any]) -> Origin:
    """The Origin of a slash command (flat fields) or of an interaction (nested ones)."""
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else body.get("user_id")
    channel = body.get("channel")
    channel_id = channel.get("id") if isinstance(channel, dict) else body.get("channel_id")
    team = body.get("team")
    team_id = team.get("id") if isinstance(team, dict) else body.get("team_id")
    return Origin(
        user=bot.user(str(user_id or "")),
        channel=str(channel_id) if channel_id else None,
        response_url=body.get("response_url"),
        key=request_key(body),
        team=str(team_id) if team_id else None,
    )
