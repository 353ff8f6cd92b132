"""``jobdeck migrate NAME``: a monitor becomes the schedule that runs its job.

The catalog file is rewritten in place, as little as possible: the monitor's lines (with
the comments right above it, such as the crontab line that the import quoted) leave
``monitors:`` and come back at the end of ``schedules:`` as a schedule with the same
name, timing, zone, description, ``shell``, ``env``, ``timeout``, ``notify``,
``notify_policy`` and ``alerts``; ``grace`` (a monitor's own) is dropped. Everything
else in the file keeps its text and place. Runs keep their job name, so the monitor's
history (its pings and missed slots) stays with the schedule, and the slots the monitor
decided are the schedule's last fires: a migrated schedule does not fire again a slot
that the legacy crontab already ran.
"""

from __future__ import annotations

import json
from typing import Any

from jobdeck.catalog.crontab_yaml import block_or_quoted, key, quote
from jobdeck.catalog.load import load_catalog_text
from jobdeck.catalog.positions import parse

# The monitor's keys that a schedule takes, in the order they are written.
KEPT = ("description", "cron", "rate", "timezone", "timeout", "env", "notify")
KEPT_AFTER = ("notify_policy", "alerts")


class MigrateError(Exception):
    """The monitor cannot be migrated; the message says why and what to do."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_comment(line: str) -> bool:
    return line.lstrip(" ").startswith("#")


def _section_line(lines: list[str], section: str) -> int | None:
    for index, line in enumerate(lines):
        if line.rstrip() == f"{section}:" or line.startswith(f"{section}: "):
            return index
    return None


def _section_end(lines: list[str], start: int) -> int:
    """The index after the last line of the top-level section that starts at ``start``
    (trailing blank and comment lines left to what follows)."""
    end = start + 1
    last = start
    while end < len(lines):
        line = lines[end]
        if line.strip() and not _is_comment(line) and _indent(line) == 0:
            break
        if line.strip() and not _is_comment(line):
            last = end
        end += 1
    return last + 1


def _value(value: Any) -> str:
    if isinstance(value, str):
        return quote(value)
    return json.dumps(value, ensure_ascii=False)


def schedule_lines(name: str, spec: dict[str, Any], indent: str) -> list[str]:
    inner = indent * 2
    lines = [f"{indent}{key(name)}:"]
    for field in KEPT:
        if field in spec and spec[field] is not None and field != "env":
            lines.append(f"{inner}{field}: {_value(spec[field])}")
        if field == "timezone":
            shell = spec.get("shell")
            assert isinstance(shell, str)
            value = block_or_quoted(shell, indent * 3)
            lines.append(f"{inner}shell: {value[0]}")
            lines.extend(value[1:])
        if field == "env" and spec.get("env"):
            lines.append(f"{inner}env: {_value(spec['env'])}")
    for field in KEPT_AFTER:
        if spec.get(field) is not None:
            lines.append(f"{inner}{field}: {_value(spec[field])}")
    return lines


def migrate_monitor(text: str, name: str, filename: str = "jobdeck.yaml") -> str:
    """The catalog ``text`` with monitor ``name`` turned into a schedule."""
    data, positions = parse(text)
    monitors = data.get("monitors") if isinstance(data, dict) else None
    if not isinstance(monitors, dict) or name not in monitors:
        known = ", ".join(monitors or {}) if isinstance(monitors, dict) else ""
        raise MigrateError(
            f"no monitor named {name!r} in {filename}" + (f" (monitors: {known})" if known else "")
        )
    spec = monitors[name]
    if not isinstance(spec, dict) or not isinstance(spec.get("shell"), str):
        raise MigrateError(
            f"monitor {name!r} has no 'shell': jobdeck does not know what its job runs; add "
            "the command line as 'shell:' (the import writes it), then migrate it"
        )
    lines = text.split("\n")
    top = _section_line(lines, "monitors")
    if top is None or lines[top].rstrip() != "monitors:":
        raise MigrateError(
            "monitors: is written in flow style ({...}); write it one item per line, then migrate"
        )
    start = positions.key(("monitors", name))[0] - 1
    width = _indent(lines[start])
    if width == 0 or not lines[start].lstrip().startswith((f"{name}:", f'"{name}":')):
        raise MigrateError(f"cannot find monitor {name!r}'s lines in {filename}")
    end = start + 1
    while end < len(lines) and (
        not lines[end].strip() or _is_comment(lines[end]) or _indent(lines[end]) > width
    ):
        end += 1
    while end > start + 1 and (not lines[end - 1].strip() or _is_comment(lines[end - 1])):
        end -= 1  # comments and blank lines after it belong to what follows
    first = start
    while first > top + 1 and _is_comment(lines[first - 1]) and _indent(lines[first - 1]) == width:
        first -= 1
    comments = lines[first:start]
    indent = lines[start][:width]
    moved = [*comments, *schedule_lines(name, spec, indent)]
    rest = lines[:first] + lines[end:]
    if top + 1 < len(rest) and not rest[top + 1].strip():
        del rest[top + 1]  # no blank line left hanging under the header
    if len(monitors) == 1:
        rest[top] = "monitors: {}"
    place = _section_line(rest, "schedules")
    if place is None:
        monitors_at = _section_line(rest, "monitors")
        assert monitors_at is not None
        rest[monitors_at:monitors_at] = ["schedules:", *moved, ""]
    elif rest[place].rstrip() in ("schedules: {}", "schedules:"):
        rest[place] = "schedules:"
        after = _section_end(rest, place)
        rest[after:after] = moved
    else:
        raise MigrateError(
            "schedules: is written in flow style ({...}); write it one item per line, then migrate"
        )
    result = "\n".join(rest)
    load_catalog_text(result, filename)  # raises CatalogError if the result is invalid
    return result
