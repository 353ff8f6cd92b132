"""``jobdeck import crontab``: a legacy crontab -> catalog YAML, and what did not carry over.

Entries become schedules in file order, each preceded by a comment quoting its crontab
line, so that a reviewer can check the conversion line by line. Cron semantics are kept
where jobdeck can express them (each entry's environment as in force at its line,
``CRON_TZ``, the ``%`` rule, ``flock``/``timeout`` wrappers, ``SHELL``); everything else is
a warning, both on the returned list and as a ``# warning:`` comment at its place.
The returned YAML always loads with :func:`jobdeck.catalog.load.load_catalog_text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePosixPath
from zoneinfo import available_timezones

from jobdeck.catalog.crontab_parse import (
    BadLine,
    Comment,
    CrontabLine,
    Entry,
    EnvLine,
    parse_crontab,
    split_percent,
)
from jobdeck.catalog.crontab_shell import balanced, schedule_name, simple_argv, tokens
from jobdeck.catalog.crontab_wrappers import (
    Wrapper,
    flock_mode,
    inner_command,
    lead_wrapper,
    timeout_mode,
)
from jobdeck.catalog.crontab_yaml import Block, Document, Job, render
from jobdeck.catalog.load import CatalogError, load_catalog_text
from jobdeck.catalog.types import ENV_RE, PROJECT_RE
from jobdeck.units import format_duration

_MAIL_SETTINGS = frozenset({"MAILFROM", "CONTENT_TYPE", "CONTENT_TRANSFER_ENCODING"})
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_NESTED_WRAPPERS = 4  # ``timeout 1h flock -n /x nice cmd`` is as deep as real crontabs go


@dataclass(frozen=True)
class CrontabImport:
    yaml: str  # a complete, valid catalog
    warnings: list[str]  # each "FILE:LINE: message", for everything not converted faithfully
    lines: dict[str, int] = field(default_factory=dict)  # schedule -> its crontab line


def import_crontab(
    text: str, *, source: str = "crontab", system: bool = False, project: str = "imported"
) -> CrontabImport:
    """Convert a crontab's text; ``system`` reads the user column of /etc/crontab files.

    Raises ValueError only for an invalid ``project`` name; odd crontab lines become
    warnings, never exceptions.
    """
    if not PROJECT_RE.fullmatch(project):
        raise ValueError(
            f"invalid project name {project!r}: use lowercase letters, digits and '-', "
            "starting with a letter, at most 32 characters"
        )
    # Text decoded with errors="surrogateescape" cannot be written back as YAML.
    lines = parse_crontab(_SURROGATE_RE.sub("\ufffd", text), system=system)
    converter = _Converter(lines)
    for line in lines:
        converter.convert(line)
    return converter.finish(source=source, project=project, system=system)


class _Converter:
    """Converts the crontab's lines in order, keeping cron's state (env, SHELL, zones)."""

    def __init__(self, lines: list[CrontabLine]) -> None:
        self.blocks: list[Block] = []
        self.warnings: list[tuple[int, str]] = []
        self.top_notes: list[str] = []
        self.names: set[str] = set()
        self.env: dict[str, str] = {}
        self.shell = "/bin/sh"
        self.cron_tz: str | None = None  # as written; "" when unset
        self.tz: str | None = None
        self.lock_users = _lock_users(lines)

    def warn(self, line: int, message: str, block: Block | None) -> None:
        self.warnings.append((line, message))
        if block is not None:
            block.note(f"warning: {message}")

    def convert(self, line: CrontabLine) -> None:
        if isinstance(line, Comment):
            if not line.boilerplate:
                self.blocks.append(Block([line.text]))
        elif isinstance(line, BadLine):
            block = Block([f"# line {line.line}, not converted: {line.text.strip()}"])
            self.blocks.append(block)
            self.warn(line.line, f"not converted: {line.reason}", block)
        elif isinstance(line, EnvLine):
            self._env(line)
        else:
            self._entry(line)

    def _env(self, line: EnvLine) -> None:
        name, value = line.name, line.value
        block = Block([f"# line {line.line}: {line.text.strip()}"])
        self.blocks.append(block)
        if name == "SHELL":
            self.shell = value or "/bin/sh"
            if PurePosixPath(self.shell).name != "sh":
                self.warn(
                    line.line,
                    f"SHELL={value}: jobdeck runs 'shell:' with /bin/sh, so the commands below "
                    f"that need a shell run as [{value}, -c, ...] to keep its syntax",
                    block,
                )
        elif name == "MAILTO":
            if value:
                block.note(
                    "cron mailed the output of the jobs below to this address; jobdeck has "
                    'no mail target: add e.g. notify: ["slack:#batch-alerts"] or '
                    '["webhook:https://..."] to them (or under defaults:)'
                )
                self.warn(line.line, f"MAILTO={value} is not converted: no mail target", block)
            else:
                block.note("cron sent no mail for the jobs below; nothing to convert")
        elif name in ("CRON_TZ", "TZ"):
            self._zone_line(line, block)
        elif name in _MAIL_SETTINGS:
            block.note("a setting of cron's mail; dropped")
        elif name == "RANDOM_DELAY":
            self.warn(line.line, "RANDOM_DELAY is not converted: jobdeck fires on time", block)
        elif not ENV_RE.fullmatch(name):
            self.warn(line.line, f"{name!r} is not a valid environment name; dropped", block)
        else:
            self.env[name] = value
            block.note(f"-> env {name} of the schedules below")

    def _zone_line(self, line: EnvLine, block: Block) -> None:
        if line.name == "TZ":
            self.tz = line.value
            self.env["TZ"] = line.value  # the jobs saw it in their environment
        else:
            self.cron_tz = line.value
        if line.value and _known_zone(line.value) is None:
            self.warn(
                line.line,
                f"unknown time zone {line.value!r}: the schedules below are imported as if "
                "no zone were set",
                block,
            )
        if line.name == "TZ" and self.cron_tz:
            block.note("-> env TZ of the schedules below; CRON_TZ still says when they fire")
            return
        zone = self.zone
        if zone is None:
            return
        block.note(f"-> time zone of the schedules below: {zone}")
        if line.name == "TZ":
            self.warn(
                line.line,
                f"TZ={line.value} is taken as the schedules' time zone; most crons (Vixie, "
                "cronie) only passed it to the jobs and fired by CRON_TZ or the server's "
                "zone: check",
                block,
            )

    @property
    def zone(self) -> str | None:
        return _known_zone(self.cron_tz or self.tz or "")

    def _entry(self, entry: Entry) -> None:
        block = Block([f"# line {entry.line}: {entry.text.strip()}"])
        self.blocks.append(block)
        if entry.cron == "@reboot":
            self.warn(
                entry.line,
                "@reboot is not converted: jobdeck fires schedules by time; start it with "
                "the host (a systemd unit), or make it a worker if it keeps running",
                block,
            )
            return
        if entry.disabled:
            block.note("commented out in the crontab: kept, switched off (enabled: false)")
        if entry.user is not None:
            self.warn(
                entry.line,
                f"ran as user {entry.user!r}; jobdeck runs every job as its own user",
                block,
            )
        command, stdin = split_percent(entry.command)
        command, remark = split_comment(command)
        job = Job(entry.line, "", entry.cron, self.zone, dict(self.env), not entry.disabled)
        if remark:
            # sh ignores it; it says why (often why the job was switched off).
            job.description = remark
        if _sh_rejects(command):
            self._broken(entry, job, command, stdin, block)
            return
        # ``date +`` with no format: the % was meant literally.
        if stdin is not None and command.endswith("+"):
            self.warn(
                entry.line,
                "an unescaped % cut this command short, as cron did (write \\% for a "
                "literal %): converted as cron ran it, which looks broken",
                block,
            )
        if stdin is None and "\\%" in entry.command:
            block.note("cron turned each \\% into %, so the command below has plain %")
        command = self._unwrap(command, job, block)
        if not command.strip(" \t"):
            self.warn(entry.line, "not converted: the command is empty", block)
            return
        job.name = self._unique(schedule_name(command))
        self._set_command(job, command, stdin, block)
        block.job = job

    def _broken(
        self, entry: Entry, job: Job, command: str, stdin: str | None, block: Block
    ) -> None:
        """A line cron could not run: ``/bin/sh`` refused the command (a quote or ``$(``
        left open, often cut there by an unescaped %) and nothing ran. It is kept switched
        off, running what cron ran (which fails the same way), never a guess at what was
        meant: whatever followed the cut would otherwise run as commands."""
        cut = " (an unescaped % cut it there: write \\% for a literal %)" if stdin else ""
        why = (
            f"cron could not run this line: /bin/sh rejects the command {command.strip()!r} "
            f"with a syntax error{cut}, so nothing ran; imported switched off "
            "(enabled: false) as cron ran it: fix the command, then enable it"
        )
        self.warn(entry.line, why, block)
        job.enabled = False
        job.name = self._unique(schedule_name(command))
        job.shell = command.strip(" \t")
        block.job = job

    def _unique(self, base: str) -> str:
        name, number = base, 1
        while name in self.names:
            number += 1
            name = f"{base[: 63 - len(str(number)) - 1]}-{number}"
        self.names.add(name)
        return name

    def _unwrap(self, command: str, job: Job, block: Block) -> str:
        for _ in range(_NESTED_WRAPPERS):
            wrapper = lead_wrapper(command)
            if wrapper is None:
                if PurePosixPath(next(iter(command.split()), "")).name == "flock":
                    block.note("flock kept: the import cannot take this form apart safely")
                break
            if wrapper.program == "flock":
                unwrapped = self._flock(wrapper, job, block)
            else:
                unwrapped = self._timeout(wrapper, job, block)
            if not unwrapped:
                break
            command = inner_command(wrapper)
        return command

    def _flock(self, wrapper: Wrapper, job: Job, block: Block) -> bool:
        mode = flock_mode(wrapper.options)
        others = [line for line in self.lock_users.get(wrapper.operand, []) if line != job.line]
        if mode.unsupported:
            block.note(f"flock kept: {' '.join(mode.unsupported)} has no jobdeck equivalent")
            return False
        if wrapper.operand.isdigit():
            block.note("flock kept: it locks a file descriptor, not a file")
            return False
        if others:
            lines = ", ".join(str(line) for line in others)
            block.note(
                f"flock kept: lock {wrapper.operand} is also taken on line(s) {lines}, so it "
                "keeps those jobs apart; overlap only keeps runs of one schedule apart"
            )
            return False
        if mode.nonblocking:
            job.overlap = "skip"
            block.note(
                "flock -n unwrapped: overlap: skip does the same (a fire while the last run "
                "is still going is skipped, and recorded as skipped)"
            )
            return True
        job.overlap = "buffer_one"
        waited = f", giving up after {mode.wait:g}s" if mode.wait else ""
        block.note(
            "flock without -n unwrapped: it waited for the lock; overlap: buffer_one keeps "
            f"one fire waiting while a run is going (flock queued every fire{waited})"
        )
        self.warn(job.line, "a waiting flock became overlap: buffer_one", block)
        return True

    def _timeout(self, wrapper: Wrapper, job: Job, block: Block) -> bool:
        mode = timeout_mode(wrapper.options, wrapper.operand)
        if mode.limit is None:
            block.note(f"timeout kept: {mode.reason}")
            return False
        job.timeout = format_duration(mode.limit)
        grace = ""
        if mode.kill_after is not None:
            job.kill_grace = format_duration(mode.kill_after)
            grace = f" and SIGKILL after kill_grace: {job.kill_grace}"
        block.note(
            f"timeout unwrapped: timeout: {job.timeout} sends SIGTERM to the whole process "
            f"group{grace}; the run ends timed_out (instead of exiting 124)"
        )
        return True

    def _set_command(self, job: Job, command: str, stdin: str | None, block: Block) -> None:
        argv = simple_argv(command) if stdin is None else None
        if argv is not None:
            job.command = argv
            return
        text = command
        if stdin is not None:
            text = with_stdin(command, stdin)
            block.note(
                "the text after the first % was the job's standard input (% as newlines): "
                "a here-document feeds it"
            )
        if PurePosixPath(self.shell).name == "sh":
            job.shell = text
        else:
            job.command = [self.shell, "-c", text]

    def finish(self, *, source: str, project: str, system: bool) -> CrontabImport:
        zone = self._resolve_zones()
        for _ in range(len(self.blocks) + 1):
            document = render(
                self.blocks,
                header=self._header(source, system),
                project=project,
                zone=[zone, *self.top_notes],
                env=self._shared_env(),
            )
            try:
                load_catalog_text(document.text(), source)
                break
            except CatalogError as exc:
                self._demote(exc, document)
        warnings = [f"{source}:{line}: {message}" for line, message in sorted(self.warnings)]
        lines = {b.job.name: b.job.line for b in self.blocks if b.job is not None}
        return CrontabImport(document.text(), warnings, lines)

    def _shared_env(self) -> dict[str, str]:
        """The environment every schedule has alike: written once under ``defaults``,
        and taken out of each schedule's own ``env``."""
        jobs = [block.job for block in self.blocks if block.job is not None]
        if not jobs:
            return {}
        shared = dict(jobs[0].env)
        for job in jobs[1:]:
            shared = {name: value for name, value in shared.items() if job.env.get(name) == value}
        for job in jobs:
            job.env = {name: value for name, value in job.env.items() if name not in shared}
        return shared

    def _header(self, source: str, system: bool) -> list[str]:
        kind = "a system crontab, with a user column" if system else "a user crontab"
        jobs = sum(block.job is not None for block in self.blocks)
        return [
            f"Imported from {source} ({kind}) by `jobdeck import crontab`: {jobs} schedule(s),",
            f"{len(self.warnings)} warning(s) (marked 'warning:' below). Review before applying;",
            "each 'line N:' comment quotes the crontab line the schedule comes from.",
            "Where jobdeck's defaults differ from cron (set them per schedule or in defaults:):",
            "  timeout: 1h      cron never stopped a job: raise it for batches that run longer",
            "  overlap: skip    cron started a job again while its last run was still going",
            "  catchup: latest  cron did not run the slots it missed while it was down",
            "'command:' runs without a shell; 'shell:' runs with /bin/sh -c, as cron did.",
        ]

    def _demote(self, error: CatalogError, document: Document) -> None:
        """Turn schedules the catalog rejects into comments: a last line of defence."""
        jobs = {block.job.name: block for block in self.blocks if block.job is not None}
        demoted = False
        for diagnostic in error.diagnostics:
            for name, (first, last) in document.spans.items():
                block = jobs.get(name)
                if block is not None and block.job is not None and first <= diagnostic.line <= last:
                    line = block.job.line
                    block.job = None
                    demoted = True
                    self.warn(
                        line, f"not converted, the catalog rejects it: {diagnostic.message}", block
                    )
        if not demoted:
            raise AssertionError(f"the imported catalog does not load:\n{error}") from error

    def _resolve_zones(self) -> str:
        """The catalog's zone: that of the first enabled schedule; others say their own."""
        jobs = [block.job for block in self.blocks if block.job is not None]
        first = next((job for job in jobs if job.enabled), jobs[0] if jobs else None)
        top = first.zone if first is not None else self.zone
        if top is None and jobs:
            line = next(job.line for job in jobs if job.zone is None)
            message = (
                "no CRON_TZ: cron fired these jobs in the server's local time zone; "
                "the catalog says UTC: set timezone to the server's zone"
            )
            self.warnings.append((line, message))
            self.top_notes.append(f"warning: {message}")
        for job in jobs:
            if job.zone != top:
                job.timezone = job.zone or "UTC"
                if job.zone is None:
                    self.warn(
                        job.line,
                        "no time zone was set at this line, so cron used the server's "
                        "local zone; timezone: UTC is a guess",
                        None,
                    )
        return top or "UTC"


def _lock_users(lines: list[CrontabLine]) -> dict[str, list[int]]:
    """Lock file -> the lines whose leading flock takes it."""
    users: dict[str, list[int]] = {}
    for line in lines:
        if not isinstance(line, Entry):
            continue
        command = split_percent(line.command)[0]
        for _ in range(_NESTED_WRAPPERS):
            wrapper = lead_wrapper(command)
            if wrapper is None:
                break
            if wrapper.program == "flock":
                users.setdefault(wrapper.operand, []).append(line.line)
            command = inner_command(wrapper)
    return users


def _sh_rejects(command: str) -> bool:
    """Whether ``/bin/sh -c command`` fails with a syntax error: a quote, ``$(`` or
    backquote left open (a lone backslash at the very end is taken literally by sh)."""
    text = command.rstrip(" \t")
    if text.endswith("\\") and (len(text) - len(text.rstrip("\\"))) % 2 == 1:
        text = text[:-1]
    return not balanced(text)


def split_comment(command: str) -> tuple[str, str]:
    """(the command, its trailing shell comment without ``#``): ``/bin/sh`` ignores a
    word that starts with ``#`` and the rest of the line."""
    words = tokens(command)
    if not words or not command[words[-1].start :].startswith("#"):
        return command, ""
    start = words[-1].start
    return command[:start].rstrip(" \t"), command[start:].lstrip("#").strip(" \t")


def with_stdin(command: str, stdin: str) -> str:
    """Shell text that runs ``command`` with ``stdin`` as its standard input."""
    delimiter = "CRON_STDIN"
    while delimiter in stdin.split("\n"):
        delimiter += "_"
    body = f"<<'{delimiter}'\n{stdin}{delimiter}"
    command = command.strip(" \t")
    if simple_argv(command) is not None:
        return f"{command} {body}"
    # Braces make the whole command list read the input, as under cron, and keep the
    # command's own redirections in charge; the newlines survive a trailing comment.
    return f"{{\n{command}\n}} {body}"


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _known_zone(value: str) -> str | None:
    """An IANA zone from a CRON_TZ/TZ value (``:Asia/Tokyo`` is POSIX for the same)."""
    name = value.strip().removeprefix(":")
    return name if name in _zones() else None
