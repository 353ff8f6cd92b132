"""The wrappers that crontab lines put around a command: ``flock`` and ``timeout``.

Both do what a jobdeck schedule does by itself (``overlap``, ``timeout``), so the import
unwraps them when their options mean exactly that, and keeps them otherwise.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath

from jobdeck.catalog.crontab_shell import WRAPPERS, option_wants_value, tokens


@dataclass(frozen=True)
class Wrapper:
    """A wrapper leading the command: ``flock -n /tmp/x.lock CMD`` or ``timeout 1h CMD``."""

    program: str  # "flock" or "timeout"
    options: list[str]  # options with their values, as written
    operand: str  # the lock file or the duration
    prefix: str  # text before the wrapper (``cd /app && ``), kept in front of the inner command
    inner: str  # the wrapped command, as shell text
    command_string: bool  # flock's ``-c 'CMD'`` form: ``inner`` is that string


def lead_wrapper(text: str) -> Wrapper | None:
    """The flock or timeout that runs the rest of ``text``, after any ``cd DIR &&``."""
    words = tokens(text)
    index = 0
    while (
        index + 2 < len(words)
        and words[index].value == "cd"
        and not words[index].op
        and not words[index + 1].op
        and words[index + 2].op == "&&"
    ):
        index += 3
    if index >= len(words) or words[index].op:
        return None
    program = PurePosixPath(words[index].value).name
    if program not in ("flock", "timeout"):
        return None
    takes_value, _ = WRAPPERS[program]
    options: list[str] = []
    position = index + 1
    while position < len(words) and words[position].value.startswith("-"):
        word = words[position]
        if word.op or word.value in ("-c", "--command"):
            break
        options.append(word.value)
        position += 1
        if option_wants_value(word.value, takes_value) and position < len(words):
            options.append(words[position].value)
            position += 1
    if position + 1 >= len(words) or any(w.op for w in words[index : position + 1]):
        return None
    operand = words[position].value
    rest = words[position + 1 :]
    prefix = text[: words[index].start]
    if rest[0].value in ("-c", "--command") and not rest[0].op:
        if len(rest) != 2 or rest[1].op:
            return None  # something follows the command string: leave it to the shell
        return Wrapper(program, options, operand, prefix, rest[1].value, command_string=True)
    if rest[0].op:
        return None
    return Wrapper(program, options, operand, prefix, text[rest[0].start :], False)


def inner_command(wrapper: Wrapper) -> str:
    """The command a wrapper runs, as shell text, with what came before the wrapper."""
    if not wrapper.command_string:
        return wrapper.prefix + wrapper.inner
    if not wrapper.prefix:
        return wrapper.inner
    return f"{wrapper.prefix}sh -c {shlex.quote(wrapper.inner)}"


@dataclass(frozen=True)
class FlockMode:
    nonblocking: bool
    wait: float | None  # -w seconds: how long a waiting flock waited before giving up
    unsupported: list[str]


def flock_mode(options: list[str]) -> FlockMode:
    """What flock's options ask for (``-n``, ``-w 10``), and the ones jobdeck cannot do.

    ``-x``/``-e`` (the default exclusive lock), ``-o``, ``-F`` and ``--verbose`` change
    nothing that matters here; shared locks, unlocking and a conflict exit code do.
    """
    nonblocking, wait, unsupported = False, None, []
    pending = list(options)
    while pending:
        option = pending.pop(0)
        if option.startswith("--"):
            name, has_value, value = option.partition("=")
            if name in ("--nonblock", "--nb"):
                nonblocking = True
            elif name in ("--timeout", "--wait"):
                wait = _seconds(value if has_value else (pending.pop(0) if pending else ""))
                unsupported += [] if wait is not None else [option]
            elif name not in ("--exclusive", "--close", "--no-fork", "--verbose"):
                unsupported.append(option)
            continue
        letters = option[1:]
        for position, letter in enumerate(letters):
            if letter == "n":
                nonblocking = True
            elif letter == "w":
                value = letters[position + 1 :] or (pending.pop(0) if pending else "")
                wait = _seconds(value)
                unsupported += [] if wait is not None else [f"-w {value}"]
                break
            elif letter not in "xeoF":
                unsupported.append(f"-{letter}")
                if letter == "E" and not letters[position + 1 :] and pending:
                    pending.pop(0)
                break
    return FlockMode(nonblocking or wait == 0, wait, unsupported)


@dataclass(frozen=True)
class TimeoutMode:
    limit: timedelta | None  # None: keep the wrapper, for ``reason``
    kill_after: timedelta | None = None
    reason: str = ""


_GNU_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def timeout_mode(options: list[str], duration: str) -> TimeoutMode:
    """GNU ``timeout [-k D] [-s TERM] DURATION``, as a jobdeck timeout and kill grace."""
    limit = _gnu_duration(duration)
    if limit is None:
        return TimeoutMode(None, reason=f"{duration!r} is no time limit jobdeck can set")
    kill_after = None
    pending = list(options)
    while pending:
        option = pending.pop(0)
        name, has_value, value = (
            option.partition("=")
            if option.startswith("--")
            else (
                option[:2],
                bool(option[2:]),
                option[2:],
            )
        )
        if name in ("-k", "--kill-after", "-s", "--signal") and not has_value:
            value = pending.pop(0) if pending else ""
        if name in ("-k", "--kill-after"):
            kill_after = _gnu_duration(value)
            if kill_after is None:
                return TimeoutMode(None, reason=f"-k {value!r} is no grace jobdeck can set")
        elif name in ("-s", "--signal"):
            if value.upper().removeprefix("SIG") not in ("TERM", "15"):
                return TimeoutMode(None, reason=f"it sends SIG{value}, jobdeck sends SIGTERM")
        elif name not in ("--preserve-status", "--foreground", "-v", "--verbose"):
            return TimeoutMode(None, reason=f"{option} has no jobdeck equivalent")
    return TimeoutMode(limit, kill_after)


def _gnu_duration(text: str) -> timedelta | None:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text)
    if match is None:
        return None
    try:
        limit = timedelta(seconds=float(match.group(1)) * _GNU_UNITS[match.group(2)])
    except OverflowError:
        return None
    limit = timedelta(milliseconds=round(limit / timedelta(milliseconds=1)))
    return limit if limit > timedelta(0) else None


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None
