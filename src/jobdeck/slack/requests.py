"""What a slash command asks for, as a pure function of its text.

Shared by the bot of ``jobdeck serve`` and the bot on AWS Lambda, so that both read
``/jobdeck help``, ``/jobdeck run NAME key=value ...`` and a command's own slash command
the same way and answer what they cannot read with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobdeck.catalog.params import parse_assignments, split_words

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
