"""Who may invoke a command, from where: deny by default.

A command runs from chat only when its ``allow`` names the channel, the user, or a user
group the user belongs to. The terminal and the HTTP API are operators' tools: whoever
holds the store or the API's token already controls the engine, so ``allow`` (which
governs chat) does not apply to them; a disabled command is refused to everyone.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobdeck.commands.spec import AllowSpec
    from jobdeck.store.records import Via

OPERATOR_VIAS: tuple[Via, ...] = ("cli", "api")


@dataclass(frozen=True)
class Caller:
    """Who asks, and where: ``actor`` is a Slack user id from chat, a name otherwise."""

    via: Via
    actor: str
    channel: str | None = None

    @property
    def where(self) -> str:
        return f"{self.via} {self.channel}" if self.channel else self.via


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str  # why: "channel C0EDITORIAL", "usergroup S0EDITORS", "operator (cli)", ...


def needs_usergroups(allow: AllowSpec, caller: Caller) -> bool:
    """Whether the decision depends on the caller's user groups (worth a lookup)."""
    if caller.via in OPERATOR_VIAS or not allow.usergroups:
        return False
    return caller.channel not in allow.channels and caller.actor not in allow.users


def authorize(allow: AllowSpec, caller: Caller, member_of: Collection[str] = ()) -> Decision:
    """``member_of``: the user groups of ``allow`` that the caller belongs to."""
    if caller.via in OPERATOR_VIAS:
        return Decision(True, f"operator ({caller.via})")
    if caller.channel is not None and caller.channel in allow.channels:
        return Decision(True, f"channel {caller.channel}")
    if caller.actor in allow.users:
        return Decision(True, f"user {caller.actor}")
    for group in allow.usergroups:
        if group in member_of:
            return Decision(True, f"usergroup {group}")
    return Decision(False, "not in allow (channels, users, usergroups)")
