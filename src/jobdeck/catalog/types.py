"""The scalar types of the catalog: names, durations, sizes, zones, cron, notify targets.

Each is an ``Annotated`` type that validates with a message saying how to fix the value,
serialises back to the catalog's own spelling, and publishes a JSON Schema for editors.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from difflib import get_close_matches
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from jobdeck.cadence import CRON_HINT, cron_error
from jobdeck.catalog.env_refs import parse_ref
from jobdeck.units import (
    DURATION_HINT,
    SIZE_HINT,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)

NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,62}")
PROJECT_RE = re.compile(r"[a-z][a-z0-9-]{0,31}")
PARAM_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def _name(pattern: re.Pattern[str], what: str, rule: str) -> Any:
    def check(value: object) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"invalid {what} {value!r}; {rule}")
        return value

    return BeforeValidator(check)


Name = Annotated[
    str,
    _name(
        NAME_RE,
        "name",
        "use lowercase letters, digits and '-', starting with a letter, at most 63 characters",
    ),
    WithJsonSchema({"type": "string", "pattern": f"^{NAME_RE.pattern}$"}),
]
ProjectName = Annotated[
    str,
    _name(
        PROJECT_RE,
        "project name",
        "use lowercase letters, digits and '-', starting with a letter, at most 32 characters",
    ),
    WithJsonSchema({"type": "string", "pattern": f"^{PROJECT_RE.pattern}$"}),
]
ParamName = Annotated[
    str,
    _name(
        PARAM_RE,
        "parameter name",
        "use lowercase letters, digits and '_', not starting with a digit",
    ),
    WithJsonSchema({"type": "string", "pattern": f"^{PARAM_RE.pattern}$"}),
]
EnvName = Annotated[
    str,
    _name(
        ENV_RE,
        "environment variable name",
        "use letters, digits and '_', not starting with a digit",
    ),
    WithJsonSchema({"type": "string", "pattern": f"^{ENV_RE.pattern}$"}),
]


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: a unit is required; {DURATION_HINT}")
    return parse_duration(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([0-9]+(ms|s|m|h|d))+$",
            "description": "a duration: 500ms, 30s, 15m, 2h, 1d, 1h30m",
        }
    ),
]


def _size(value: object) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A bare number is more often a forgotten unit than a count of bytes.
        raise ValueError(
            f"invalid size {value!r}: a number without a unit is ambiguous; "
            f"add one, e.g. '{value}MiB' (or '{value}B' for bytes)"
        )
    if not isinstance(value, str):
        raise ValueError(f"invalid size {value!r}; {SIZE_HINT}")
    return parse_size(value)


Size = Annotated[
    int,
    BeforeValidator(_size),
    PlainSerializer(format_size, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]+(\.[0-9]+)?\s*(B|KiB|MiB|GiB|TiB|Ki|Mi|Gi|Ti|K|M|G|T|KB|MB|GB|TB)$",
            "description": "a size: 512MiB, 2GiB, 256Mi, 1G",
        }
    ),
]


def _zone(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"invalid time zone {value!r}; write an IANA name such as 'Asia/Tokyo'")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        hint = closest(value, sorted(available_timezones()))
        suffix = (
            f"; did you mean {hint!r}?" if hint else "; write an IANA name such as 'Asia/Tokyo'"
        )
        raise ValueError(f"unknown time zone {value!r}{suffix}") from None
    return value


Zone = Annotated[
    str,
    BeforeValidator(_zone),
    WithJsonSchema({"type": "string", "description": "an IANA time zone, e.g. Asia/Tokyo"}),
]


def _cron(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"invalid cron expression {value!r}; {CRON_HINT}")
    problem = cron_error(value)
    if problem:
        raise ValueError(problem)
    return value.strip()


Cron = Annotated[
    str,
    BeforeValidator(_cron),
    WithJsonSchema({"type": "string", "description": "five cron fields or @hourly/@daily/..."}),
]


def _notify(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"invalid notify target {value!r}; write 'slack:#channel' or 'webhook:https://...'"
        )
    kind, _, rest = value.partition(":")
    if kind == "slack":
        if not re.fullmatch(r"#?[A-Za-z0-9][A-Za-z0-9._-]{0,79}", rest):
            raise ValueError(f"invalid Slack target {value!r}; write 'slack:#channel-name'")
        return value
    if kind == "webhook":
        parts = urlsplit(rest)
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and _is_loopback(parts.hostname):
            return value
        raise ValueError(
            f"invalid webhook target {value!r}: plain http would send alerts unencrypted; "
            "use https:// (http is accepted only for localhost)"
        )
    raise ValueError(
        f"unknown notify target {value!r}; write 'slack:#channel' or 'webhook:https://...'"
    )


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


NotifyTarget = Annotated[
    str,
    BeforeValidator(_notify),
    WithJsonSchema({"type": "string", "pattern": "^(slack:#?.+|webhook:https?://.+)$"}),
]


def closest(word: str, candidates: list[str]) -> str | None:
    """The candidate most like ``word``, for did-you-mean hints."""
    found = get_close_matches(word, candidates, n=1, cutoff=0.6)
    if found:
        return found[0]
    # A shortened key ('backlog' for 'backlog_per_replica') is too short for difflib.
    prefixed = [c for c in candidates if len(word) >= 3 and c.startswith(word)]
    return prefixed[0] if len(prefixed) == 1 else None


def _env_value(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(
            f"invalid environment value {value!r}; write text, a number or a quoted string"
        )
    parse_ref(str(value))  # ssm:/... and secretsmanager:ARN[:key] must be well formed
    return str(value)


EnvValue = Annotated[
    str, BeforeValidator(_env_value), WithJsonSchema({"type": ["string", "number"]})
]


def _slash(value: object) -> str:
    if not isinstance(value, str) or not SLASH_RE.fullmatch(value):
        raise ValueError(
            f"invalid slash command {value!r}; write '/' and then lowercase letters, digits, "
            "'-' or '_', at most 32 characters, e.g. '/breaking'"
        )
    return value


SLASH_RE = re.compile(r"/[a-z0-9][a-z0-9_-]{0,31}")
SlashCommand = Annotated[
    str,
    BeforeValidator(_slash),
    WithJsonSchema({"type": "string", "pattern": f"^{SLASH_RE.pattern}$"}),
]
