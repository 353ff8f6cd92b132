"""What a person typed, turned into checked param values and into argv.

Pure functions: ``key=value`` words (from a terminal or a Slack message) in, typed
values or every problem out, each naming the param and the rule it breaks. The values
become argv elements, one whole element per placeholder; no shell ever sees them.
"""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobdeck.catalog.params import (
    DEFAULT_MAX_LENGTH,
    coerce,
    control_character,
    max_length_of,
    render,
)
from jobdeck.commands.spec import LightParam

if TYPE_CHECKING:
    from jobdeck.commands.spec import CommandSpec, ParamSpec, ParamValue

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


def validate(name: str, command: CommandSpec, given: Mapping[str, object]) -> dict[str, ParamValue]:
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
    command: CommandSpec, values: Mapping[str, ParamValue], name: str = "command"
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


def usage(name: str, command: CommandSpec, prefix: str = "") -> str:
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
