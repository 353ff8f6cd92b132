"""What a slash command or a click asks for, as pure functions of what Slack sent.

Shared by the bot of ``jobdeck serve`` and the bot on AWS Lambda, so that both read
``/jobdeck help``, ``/jobdeck run NAME key=value ...``, a command's own slash command and
a Run / Cancel click the same way and answer what they cannot read with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobdeck.catalog.params import parse_assignments, split_words
from jobdeck.commands.authorize import Caller
from jobdeck.slack.blocks import PreviewValue

BASE_SLASH = "/jobdeck"
USAGE = f"Usage: `{BASE_SLASH} help` or `{BASE_SLASH} run NAME key=value ...`"


@dataclass(frozen=True)
class SlashRequest:
    """``help``; ``reply`` (``text`` says why nothing else); or ``run`` ``name``."""

    kind: str
    name: str = ""
    given: dict[str, str] = field(default_factory=dict)
    text: str = ""


def read_slash(slash: str, text: str, name_of_slash: str | None) -> SlashRequest:
    """``name_of_slash``: the command whose own slash command ``slash`` is, if any.
    Raises :class:`jobdeck.catalog.params.InvalidParams` for words that are not
    ``key=value``."""
    if slash == BASE_SLASH:
        words = split_words("jobdeck", text)
        if not words or words[0] in ("help", "-h", "--help"):
            return SlashRequest("help")
        if words[0] != "run" or len(words) < 2:
            return SlashRequest("reply", text=USAGE)
        name, words = words[1], words[2:]
    elif name_of_slash is None:
        return SlashRequest(
            "reply", text=f"No command of the applied catalog answers to `{slash}`."
        )
    else:
        name, words = name_of_slash, split_words(name_of_slash, text)
    return SlashRequest("run", name, parse_assignments(name, words))


def read_click(body: Mapping[str, Any]) -> tuple[PreviewValue, Caller, str | None]:
    """A Run / Cancel click on a preview: its value, who clicked where, and the ts of
    the preview's message (None when Slack did not send it)."""
    action = (body.get("actions") or [{}])[0]
    value = PreviewValue.load(str(action.get("value", "{}")))
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    user = str((body.get("user") or {}).get("id", ""))
    message_ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    return value, Caller("slack", user, channel), message_ts
