"""Command parameters: turning what a person typed into a checked value, and into argv.

Pure functions shared by the catalog (to check defaults) and by every invocation path
(CLI, HTTP, Slack). A value is substituted into the argv as part of one element; it
never passes through a shell, so no quoting is needed or done.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from jobdeck.catalog.model import Command, ParamValue
    from jobdeck.commands.spec import ParamSpec

# A string or url param without its own max_length takes at most this many characters.
DEFAULT_MAX_LENGTH = 1000
# Tab and line ends (LF, CR) are text; every other control character (NUL above all,
# which no argv element can hold; escape sequences) is refused.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce(param: ParamSpec, raw: object) -> ParamValue:
    """Check ``raw`` against ``param``'s rules; return the typed value or raise ValueError."""
    kind = param.type
    if kind == "bool":
        value: ParamValue = _bool(raw)
    elif kind == "int":
        value = _int(raw)
    elif kind == "float":
        value = _float(raw)
    else:
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ValueError(f"expected text, got {raw!r}")
        value = str(raw)
    if isinstance(value, str):
        _check_text(param, value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if param.min is not None and value < param.min:
            raise ValueError(f"must be at least {_num(param.min)}")
        if param.max is not None and value > param.max:
            raise ValueError(f"must be at most {_num(param.max)}")
    return value


def resolve(command: Command, given: Mapping[str, object]) -> dict[str, ParamValue]:
    """All params of ``command`` from ``given`` plus defaults; errors name param and rule."""
    errors: list[str] = []
    unknown = sorted(set(given) - set(command.params))
    for name in unknown:
        errors.append(f"{name}: unknown parameter (known: {', '.join(command.params) or 'none'})")
    values: dict[str, ParamValue] = {}
    for name, param in command.params.items():
        if name in given:
            try:
                values[name] = coerce(param, given[name])
            except ValueError as exc:
                errors.append(f"{name}: {exc}")
        elif param.default is not None:
            # Coerced like a given value: a bool param's default may be written 'yes',
            # a float param's as 3; the command must see the typed value either way.
            values[name] = coerce(param, param.default)
        elif param.required:
            errors.append(f"{name}: required")
        else:
            values[name] = ""
    if errors:
        raise ValueError("; ".join(errors))
    return values


def render(argv: Sequence[str], values: Mapping[str, ParamValue]) -> list[str]:
    """Substitute ``{name}`` fields; each element stays exactly one argv element."""
    text = {name: _text(value) for name, value in values.items()}
    return [arg.format_map(text) for arg in argv]


def _text(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def max_length_of(param: ParamSpec) -> int:
    """The most characters a string or url param takes: its own, or the default."""
    return param.max_length if param.max_length is not None else DEFAULT_MAX_LENGTH


def control_character(value: str) -> str | None:
    """The first control character of ``value`` that a param may not hold, described
    (``U+0000 at character 6``), or None."""
    found = _CONTROL.search(value)
    if found is None:
        return None
    return f"U+{ord(found.group()):04X} at character {found.start() + 1}"


def _check_text(param: ParamSpec, value: str) -> None:
    control = control_character(value)
    if control is not None:
        raise ValueError(f"must not hold control characters (found {control})")
    limit = max_length_of(param)
    if len(value) > limit:
        raise ValueError(f"longer than {limit} characters ({len(value)})")
    if param.type == "url":
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or any(c.isspace() for c in value)
        ):
            raise ValueError(f"not an http(s) URL: {value!r}")
    if param.type == "choice" and param.choices is not None and value not in param.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(param.choices)}")
    if param.pattern is not None and not re.fullmatch(param.pattern, value):
        raise ValueError(f"does not match the pattern {param.pattern!r}")


def _bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {raw!r}")


def _int(raw: object) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected a whole number, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"[+-]?\d+", raw.strip()):
        return int(raw)
    raise ValueError(f"expected a whole number, got {raw!r}")


def _float(raw: object) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"expected a number, got {raw!r}")
    try:
        value = float(raw) if isinstance(raw, int | float | str) else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"expected a number, got {raw!r}")
    return value


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
