"""Command parameters, the one params module: what a param reads of the catalog, a value
checked against its rules, ``key=value`` words parsed, and the argv rendered.

Pure functions and the standard library only, shared by the catalog (to check defaults)
and by every invocation path (CLI, HTTP, Slack, and the Slack bot on AWS Lambda, which
loads no pydantic). A value is substituted into the argv as part of one element; it
never passes through a shell, so no quoting is needed or done. Problems name the param
and the rule it breaks.
"""

from __future__ import annotations

import html
import math
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

ParamValue = str | int | float | bool


class ParamSpec(Protocol):
    """What the checks read of a param: the catalog's model and :class:`LightParam` fit."""

    @property
    def type(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def required(self) -> bool: ...
    @property
    def default(self) -> ParamValue | None: ...
    @property
    def max_length(self) -> int | None: ...
    @property
    def pattern(self) -> str | None: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...
    @property
    def choices(self) -> Sequence[str] | None: ...


class CommandParams(Protocol):
    """What the params functions read of a command: its argv and its params."""

    @property
    def command(self) -> Sequence[str]: ...
    @property
    def params(self) -> Mapping[str, ParamSpec]: ...


@dataclass(frozen=True)
class LightParam:
    """A param as plain data (Lambda's copy of the catalog, and probes of one rule)."""

    type: str = "string"
    description: str = ""
    required: bool = False
    default: ParamValue | None = None
    max_length: int | None = None
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    choices: Sequence[str] | None = None


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


def resolve(command: CommandParams, given: Mapping[str, object]) -> dict[str, ParamValue]:
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


# The constraints of a param, in the order a value is checked against them.
_RULES = ("max_length", "choices", "pattern", "min", "max")

# The most bytes of a command's argv (with its terminating NULs): far below what the
# kernel takes (ARG_MAX, with the environment), and each element below its 128 KiB.
MAX_ARGV_BYTES = 64 * 1024

# Slack writes a link in a slash command's text as <https://x|label> or <https://x>,
# and escapes &, < and > as entities.
_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^|>\s]+)(?:\|[^>]*)?>")


@dataclass(frozen=True)
class ParamProblem:
    """One param that is wrong: which, the rule it breaks, and what to do."""

    param: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.param}: {self.message}"


class InvalidParams(ValueError):
    """Every problem with the params of one request, in one message."""

    def __init__(self, command: str, problems: Iterable[ParamProblem]) -> None:
        self.command = command
        self.problems = list(problems)
        super().__init__(f"{command}: " + "; ".join(str(p) for p in self.problems))


def parse_assignments(command: str, words: Iterable[str]) -> dict[str, str]:
    """``["title=Quake", "url=https://x"]`` -> ``{"title": "Quake", "url": "https://x"}``.

    Only the first ``=`` splits, so a value may hold more of them.
    """
    values: dict[str, str] = {}
    problems: list[ParamProblem] = []
    for word in words:
        key, equals, value = word.partition("=")
        if not equals or not key:
            problems.append(
                ParamProblem(word, "syntax", "expected key=value (quote values with spaces)")
            )
        elif key in values:
            problems.append(ParamProblem(key, "syntax", "given twice; give it once"))
        else:
            values[key] = value
    if problems:
        raise InvalidParams(command, problems)
    return values


def split_words(command: str, text: str) -> list[str]:
    """Shell-like words of a chat message: quotes group, backslashes escape.

    This only splits the text; nothing is ever run by a shell.
    """
    try:
        return shlex.split(unescape_slack(text))
    except ValueError as exc:
        raise InvalidParams(
            command, [ParamProblem("text", "syntax", f"cannot be split into words ({exc})")]
        ) from None


def unescape_slack(text: str) -> str:
    """The text as typed, from how Slack sends it (links wrapped, &<> as entities)."""
    return html.unescape(_SLACK_LINK.sub(r"\1", text))


def validate(
    name: str, command: CommandParams, given: Mapping[str, object]
) -> dict[str, ParamValue]:
    """Every param of ``command``: the given value checked against its rules, else its
    default, else "" when optional; raises :class:`InvalidParams` with every problem."""
    known = ", ".join(command.params) or "none"
    problems = [
        ParamProblem(key, "unknown", f"no such param (known: {known})")
        for key in sorted(set(given) - set(command.params))
    ]
    values: dict[str, ParamValue] = {}
    for key, param in command.params.items():
        raw = given.get(key)
        if raw is None or raw == "":
            if param.default is not None:
                values[key] = coerce(param, param.default)
            elif param.required:
                problems.append(ParamProblem(key, "required", "required; give it as key=value"))
            else:
                values[key] = ""
            continue
        try:
            values[key] = coerce(param, raw)
        except ValueError as exc:
            rule = broken_rule(param, raw)
            problems.append(ParamProblem(key, rule, f"{exc} ({describe_rule(param, rule)})"))
    if problems:
        raise InvalidParams(name, problems)
    return values


def broken_rule(param: ParamSpec, raw: object) -> str:
    """The first rule of ``param`` that ``raw`` breaks: ``type`` or a constraint's key."""
    base = "string" if param.type == "choice" else param.type
    if isinstance(raw, str) and control_character(raw) is not None:
        return "characters"
    if (
        base in ("string", "url")
        and isinstance(raw, str)
        and param.max_length is None
        and len(raw) > DEFAULT_MAX_LENGTH
    ):
        return "max_length"
    try:
        coerce(LightParam(type=base), raw)
    except ValueError:
        return "type"
    for rule in _RULES:
        value = getattr(param, rule)
        if value is None:
            continue
        kind = "choice" if rule == "choices" else param.type
        try:
            coerce(LightParam(type=kind, **{rule: value}), raw)
        except ValueError:
            return rule
    return "type"


def describe_rule(param: ParamSpec, rule: str) -> str:
    if rule == "type":
        return f"type: {param.type}"
    if rule == "choices":
        return f"choices: {', '.join(param.choices or [])}"
    if rule == "characters":
        return "tab, CR and LF are the only control characters a param may hold"
    if rule == "max_length":
        return f"max_length: {max_length_of(param)}"
    return f"{rule}: {getattr(param, rule)}"


def render_argv(
    command: CommandParams, values: Mapping[str, ParamValue], name: str = "command"
) -> list[str]:
    """The argv with each ``{param}`` replaced inside its own element, never split;
    :class:`InvalidParams` when it is over :data:`MAX_ARGV_BYTES` in all."""
    argv = render(list(command.command), values)
    size = sum(len(arg.encode("utf-8", "surrogateescape")) + 1 for arg in argv)
    if size > MAX_ARGV_BYTES:
        raise InvalidParams(
            name,
            [
                ParamProblem(
                    "argv",
                    "size",
                    f"the command line would be {size} bytes, over the limit of "
                    f"{MAX_ARGV_BYTES}; give shorter values",
                )
            ],
        )
    return argv


def usage(name: str, command: CommandParams, prefix: str = "") -> str:
    """``breaking-push title=TEXT url=URL [audience=all|ios|android]``."""
    parts = [f"{prefix}{name}"]
    for key, param in command.params.items():
        shown = f"{key}={placeholder(param)}"
        parts.append(shown if param.required else f"[{shown}]")
    return " ".join(parts)


def placeholder(param: ParamSpec) -> str:
    if param.type == "choice":
        return "|".join(param.choices or [])
    return {
        "string": "TEXT",
        "url": "URL",
        "int": "N",
        "float": "X",
        "bool": "true|false",
    }[param.type]


def shell_quote(argv: Iterable[str]) -> str:
    """How an argv reads to a person, for previews; never passed to a shell."""
    return shlex.join(argv)
