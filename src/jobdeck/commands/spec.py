"""What the pure command pieces read of a command, and a light copy of it for Lambda.

The params checks, the allow decision and the Slack messages only read attributes of
the catalog's models. The protocols here name those attributes, so that the catalog's
pydantic models and the plain dataclasses below (loaded from JSON, with nothing but the
standard library) both fit: the Slack bot on AWS Lambda uses the same functions as
``jobdeck serve`` without loading pydantic at a cold start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jobdeck.catalog.params import LightParam, ParamSpec


class AllowSpec(Protocol):
    @property
    def channels(self) -> Sequence[str]: ...
    @property
    def users(self) -> Sequence[str]: ...
    @property
    def usergroups(self) -> Sequence[str]: ...


class CommandSpec(Protocol):
    @property
    def description(self) -> str: ...
    @property
    def command(self) -> Sequence[str]: ...
    @property
    def params(self) -> Mapping[str, ParamSpec]: ...
    @property
    def confirm(self) -> bool: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def slash(self) -> str | None: ...
    @property
    def allow(self) -> AllowSpec: ...


@dataclass(frozen=True)
class LightAllow:
    channels: Sequence[str] = ()
    users: Sequence[str] = ()
    usergroups: Sequence[str] = ()


@dataclass(frozen=True)
class LightCommand:
    """A catalog command as plain data: what :func:`command_json` wrote, loaded back."""

    command: Sequence[str]
    description: str = ""
    params: Mapping[str, LightParam] = field(default_factory=dict)
    confirm: bool = False
    enabled: bool = True
    slash: str | None = None
    allow: LightAllow = LightAllow()

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> LightCommand:
        allow = data.get("allow") or {}
        return cls(
            command=list(data["command"]),
            description=str(data.get("description", "")),
            params={k: LightParam(**v) for k, v in (data.get("params") or {}).items()},
            confirm=bool(data.get("confirm", False)),
            enabled=bool(data.get("enabled", True)),
            slash=data.get("slash"),
            allow=LightAllow(
                list(allow.get("channels", ())),
                list(allow.get("users", ())),
                list(allow.get("usergroups", ())),
            ),
        )


def command_json(command: CommandSpec) -> dict[str, Any]:
    """What :meth:`LightCommand.load` reads back: every attribute the pure pieces use."""
    return {
        "command": list(command.command),
        "description": command.description,
        "params": {
            key: {
                "type": p.type,
                "description": p.description,
                "required": p.required,
                "default": p.default,
                "max_length": p.max_length,
                "pattern": p.pattern,
                "min": p.min,
                "max": p.max,
                "choices": None if p.choices is None else list(p.choices),
            }
            for key, p in command.params.items()
        },
        "confirm": command.confirm,
        "enabled": command.enabled,
        "slash": command.slash,
        "allow": {
            "channels": list(command.allow.channels),
            "users": list(command.allow.users),
            "usergroups": list(command.allow.usergroups),
        },
    }
