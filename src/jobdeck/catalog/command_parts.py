"""What a command takes and who may run it: its params, its ``allow`` list and its
four-eyes ``approve`` rule."""

from __future__ import annotations

import re
from datetime import timedelta
from string import Formatter
from typing import Literal

from pydantic import Field, model_validator

from jobdeck.catalog.params import ParamValue, coerce
from jobdeck.catalog.spec import Spec, problem
from jobdeck.catalog.types import Duration

ParamType = Literal["string", "int", "float", "bool", "url", "choice"]


class Allow(Spec):
    channels: list[str] = []
    users: list[str] = []
    usergroups: list[str] = []


# An approval that nobody gives within this long is no longer a fresh decision.
APPROVAL_MAX = timedelta(days=7)


class Approve(Spec):
    """Four-eyes approval: who may approve a run of the command, and for how long a
    request waits. Slack user ids (or, from the terminal and the API, the names those
    callers act as) in ``users``; Slack user group ids in ``usergroups``."""

    users: list[str] = Field([], description="who may approve (Slack user ids or names)")
    usergroups: list[str] = Field([], description="Slack user groups whose members may approve")
    expires: Duration = Field(
        timedelta(minutes=15), description="an unapproved request is cancelled after this"
    )

    @model_validator(mode="after")
    def _someone(self) -> Approve:
        if not self.users and not self.usergroups:
            raise problem(
                "names no approver: list at least one of users or usergroups "
                "(the requester can never approve their own request)"
            )
        if self.expires <= timedelta(0):
            raise problem("must be longer than 0s", "expires")
        if self.expires > APPROVAL_MAX:
            raise problem("longer than 7d; an approval must be asked for again", "expires")
        return self


class Param(Spec):
    type: ParamType = "string"
    description: str = ""
    required: bool = False
    default: ParamValue | None = None
    max_length: int | None = Field(None, ge=1)
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    choices: list[str] | None = None

    @model_validator(mode="after")
    def _rules(self) -> Param:
        if self.type == "choice" and not self.choices:
            raise problem(
                "a choice param needs a non-empty 'choices' list; add e.g. 'choices: [a, b]'",
                "choices" if self.choices is not None else "type",
            )
        if self.choices is not None and self.type != "choice":
            raise problem(
                f"only choice params take choices, this one is {self.type}; "
                "remove it or set 'type: choice'",
                "choices",
            )
        for at in ("max_length", "pattern"):
            if getattr(self, at) is not None and self.type not in ("string", "url"):
                raise problem(
                    f"only string and url params take it, this one is {self.type}; remove it",
                    at,
                )
        for at in ("min", "max"):
            if getattr(self, at) is not None and self.type not in ("int", "float"):
                raise problem(
                    f"only int and float params take it, this one is {self.type}; remove it", at
                )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise problem(
                f"{_number(self.min)} is greater than max ({_number(self.max)}); "
                "lower min or raise max",
                "min",
            )
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise problem(
                    f"invalid regular expression ({exc}); fix it (Python re syntax)", "pattern"
                ) from None
        if self.required and self.default is not None:
            raise problem(
                "a required param cannot have a default; remove one of the two", "default"
            )
        if self.default is not None:
            try:
                coerce(self, self.default)
            except ValueError as exc:
                raise problem(
                    f"the default breaks the param's own rules ({exc}); change it", "default"
                ) from None
        return self


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def placeholders(arg: str) -> list[str]:
    """The ``{name}`` fields of one argv element (``{{`` and ``}}`` are literal braces)."""
    return [field for _, field, _, _ in Formatter().parse(arg) if field is not None]
