"""Whether a request may run, as a pure function: find the command, authorize, check its
params, refuse a disabled or suspended one.

Only the standard library, the params module (:mod:`jobdeck.catalog.params`) and the
other pure command modules are imported here, so that the Slack bot on AWS Lambda
decides exactly as the local engine does, on the light copies of the catalog's commands
(:mod:`jobdeck.commands.spec`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from jobdeck.catalog.params import InvalidParams, ParamProblem, render_argv, validate
from jobdeck.commands.authorize import Caller, Decision, authorize

if TYPE_CHECKING:
    from jobdeck.catalog.params import ParamValue
    from jobdeck.commands.spec import CommandSpec

RefusalKind = Literal["unknown", "invalid", "forbidden", "disabled", "suspended"]


class Refused(Exception):
    """An invocation that was not started; the message is fit to show the caller."""

    def __init__(
        self,
        kind: RefusalKind,
        message: str,
        problems: Sequence[ParamProblem] = (),
        audit_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.problems = list(problems)
        self.audit_id = audit_id


@dataclass(frozen=True)
class Prepared:
    """A request that may run: the checked values and the exact argv."""

    name: str
    command: CommandSpec
    values: dict[str, ParamValue]
    argv: list[str]
    decision: Decision


class Held(Protocol):
    """A suspension, as :func:`decide` reads it."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def created_by(self) -> str: ...
    @property
    def reason(self) -> str: ...
    def active(self, now: datetime) -> bool: ...


def find_command(commands: Mapping[str, CommandSpec] | None, name: str) -> CommandSpec:
    if commands is None:
        raise Refused("unknown", "nothing is applied yet; run `jobdeck apply` first")
    command = commands.get(name)
    if command is None:
        known = ", ".join(commands) or "none"
        raise Refused("unknown", f"no command named {name!r} (known: {known})")
    return command


def decide(
    commands: Mapping[str, CommandSpec] | None,
    name: str,
    given: Mapping[str, object],
    caller: Caller,
    member_of: Collection[str],
    suspensions: Sequence[Held],
    now: datetime,
) -> Prepared:
    """Decide whether ``caller`` may run ``name`` with ``given`` now; raise Refused."""
    command = find_command(commands, name)
    decision = authorize(command.allow, caller, member_of)
    if not decision.allowed:
        raise Refused(
            "forbidden",
            f"you are not allowed to run {name} here; its allow list names the channels, "
            "users and user groups that may",
        )
    try:
        values = validate(name, command, given)
        argv = render_argv(command, values, name)
    except InvalidParams as exc:
        raise Refused("invalid", str(exc), exc.problems) from None
    if not command.enabled:
        raise Refused("disabled", f"command {name} is disabled (enabled: false in the catalog)")
    for held in suspensions:
        if held.kind == "command" and held.name == name and held.active(now):
            raise Refused(
                "suspended", f"command {name} is suspended by {held.created_by}: {held.reason}"
            )
    return Prepared(name, command, values, argv, decision)
