"""The app manifest asks for what the bot uses, and points Slack at the route it serves."""

from __future__ import annotations

from pathlib import Path

import yaml

from mmm_bot.grammar import COMMAND
from mmm_bot.server import EVENTS_PATH

MANIFEST = Path(__file__).resolve().parents[2] / "mmm_bot" / "manifest.yaml"


def test_the_manifest_matches_the_bot() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == [
        "channels:history",
        "chat:write",
        "commands",
    ]
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == COMMAND
    assert command["url"].endswith(EVENTS_PATH)
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"].endswith(EVENTS_PATH)
