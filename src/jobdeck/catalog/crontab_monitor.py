"""``jobdeck import crontab --monitor``: watch a legacy crontab before moving it.

From a crontab: a catalog whose ``monitors:`` hold every job that can be watched (its
cron, zone, the command line as cron runs it, its environment), and the crontab
rewritten so that each of those jobs pings its monitor when it starts and when it ends,
with its exit status. The job's own output and exit status are unchanged; a ping that
fails, hangs or finds no server costs the job at most a few seconds (curl with short
timeouts, its own output and errors sent to /dev/null) and never fails it.

Lines that cannot be wrapped faithfully stay as they are, each with a warning: lines
switched off, ``@reboot``, commands that ``/bin/sh`` rejects, and commands with an
unescaped ``%`` (cron feeds what follows it to the job's stdin, which a wrapper around
the command would break).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jobdeck.catalog.crontab import CrontabImport, import_crontab, split_comment
from jobdeck.catalog.crontab_parse import Entry, parse_crontab, read_lines, split_percent
from jobdeck.catalog.crontab_yaml import block_or_quoted, comment_text, flow_map, key, quote
from jobdeck.catalog.load import load_catalog_text

CONNECT_SECONDS = 2
PING_SECONDS = 5
_INDENT = "  "


@dataclass(frozen=True)
class MonitoredImport:
    yaml: str  # a complete, valid catalog with the monitors
    crontab: str  # the crontab, each watched job wrapped with its pings
    monitors: list[str]
    warnings: list[str]


def ping_call(url: str) -> str:
    """A curl that neither prints nor fails, and gives up after a few seconds."""
    return (
        f"curl -fsS --connect-timeout {CONNECT_SECONDS} -m {PING_SECONDS} -o /dev/null "
        f'"{url}" >/dev/null 2>&1'
    )


def wrap(command: str, url: str) -> str:
    """``command`` between its start and end pings; exits with the command's status.
    ``command`` must have no trailing comment and no unescaped ``%``."""
    return (
        f"{ping_call(url + '/start')}; ( {command} ); jobdeck_rc=$?; "
        f"{ping_call(url + '?exit=$jobdeck_rc')}; exit $jobdeck_rc"
    )


def monitor_crontab(
    text: str,
    *,
    url_for: Callable[[str], str],
    source: str = "crontab",
    system: bool = False,
    project: str = "imported",
) -> MonitoredImport:
    """The monitors and the rewritten crontab; ``url_for(name)``: the monitor's ping URL."""
    imported: CrontabImport = import_crontab(text, source=source, system=system, project=project)
    catalog = load_catalog_text(imported.yaml, source).catalog
    entries = {
        line.line: line for line in parse_crontab(text, system=system) if isinstance(line, Entry)
    }
    warnings = list(imported.warnings)
    rewritten: dict[int, str] = {}
    document: list[str] = [
        f"# Monitors of {comment_text(source)}, imported by `jobdeck import crontab --monitor`.",
        "# The crontab beside it pings each of them; `jobdeck monitors` prints the URLs, and",
        "# `jobdeck migrate NAME` turns a monitor into the schedule that runs its job.",
        "version: 1",
        f"project: {key(project)}",
        f"timezone: {quote(catalog.timezone)}",
        "",
    ]
    names: list[str] = []
    for name, spec in catalog.schedules.items():
        entry = entries.get(imported.lines.get(name, -1))
        if entry is None or not spec.enabled:
            continue
        command, stdin = split_percent(entry.command)
        if stdin is not None:
            warnings.append(
                f"{source}:{entry.line}: not watched: an unescaped % feeds the rest of the "
                "line to the job's stdin, which a wrapper would break; write \\% for a "
                "literal %, or watch it by hand"
            )
            continue
        command, _ = split_comment(command)
        command = command.strip(" \t")
        names.append(name)
        user = f"{entry.user} " if entry.user is not None else ""
        escaped = command.replace("%", "\\%")
        rewritten[entry.line] = f"{entry.cron} {user}{wrap(escaped, url_for(name))}"
        document.append(f"{_INDENT}# line {entry.line}: {comment_text(entry.text.strip())}")
        document.append(f"{_INDENT}{key(name)}:")
        inner = _INDENT * 2
        if spec.description:
            document.append(f"{inner}description: {quote(spec.description)}")
        document.append(f"{inner}cron: {quote(spec.cron or '')}")
        if spec.timezone is not None and spec.timezone != catalog.timezone:
            document.append(f"{inner}timezone: {quote(spec.timezone)}")
        value = block_or_quoted(command, _INDENT * 3)
        document.append(f"{inner}shell: {value[0]}")
        document.extend(value[1:])
        if spec.env:
            document.append(f"{inner}env: {flow_map(dict(spec.env))}")
    document.insert(7, "monitors:" if names else "monitors: {}")
    yaml = "\n".join(document) + "\n"
    load_catalog_text(yaml, source)  # what is written always loads
    lines = text.split("\n")
    for number, _line in read_lines(text):
        if number in rewritten:
            lines[number - 1] = rewritten[number]
    return MonitoredImport(yaml, "\n".join(lines), names, warnings)
