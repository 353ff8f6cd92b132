"""Writing the imported catalog as YAML, comments and all.

The text is written by hand rather than through a YAML dumper because every schedule is
preceded by comments quoting the crontab, and ruamel's comment API cannot place those
reliably. Every string is double-quoted with escapes for anything unprintable, so that
no command, however odd, changes meaning or breaks the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# What YAML lets stand in a double-quoted scalar or a comment without escaping. Line
# and paragraph separators and NEL count as line breaks to YAML, so they are escaped too.
_UNPRINTABLE_RE = re.compile(
    "[^\t\x20-\x7e\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029]"
)
_PLAIN_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# Plain scalars that YAML 1.1 or 1.2 readers would take for a boolean or null.
_RESERVED = frozenset(["null", "true", "false", "yes", "no", "on", "off", "y", "n"])
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\x00": "\\0"}


def quote(text: str) -> str:
    """``text`` as a YAML double-quoted scalar that reads back as exactly ``text``."""
    return '"' + re.sub(r'[\\"\t]|' + _UNPRINTABLE_RE.pattern, _escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def key(text: str) -> str:
    """A mapping key or short value, plain when that is unambiguous."""
    if _PLAIN_KEY_RE.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return quote(text)


def comment_text(text: str) -> str:
    """``text`` made safe to stand after ``#`` on one line."""
    return _UNPRINTABLE_RE.sub(lambda m: repr(m.group())[1:-1], text)


def flow_list(items: list[str]) -> str:
    return "[" + ", ".join(quote(item) for item in items) + "]"


def flow_map(items: dict[str, str]) -> str:
    return "{" + ", ".join(f"{key(name)}: {quote(value)}" for name, value in items.items()) + "}"


def block_or_quoted(text: str, indent: str) -> list[str]:
    """A multi-line string as a literal block (``|-``) when it reads back unchanged.

    Returns the value's lines: the first goes after ``key:``, the rest follow it.
    """
    lines = text.split("\n")
    literal = (
        len(lines) > 1
        and not text.endswith("\n")
        and not text.startswith((" ", "\t"))
        and lines[0] != ""
        and not _UNPRINTABLE_RE.search(text.replace("\n", ""))
        and all(line == line.rstrip(" \t") for line in lines)
    )
    if not literal:
        return [quote(text)]
    return ["|-", *[f"{indent}{line}" if line else "" for line in lines]]


@dataclass
class Document:
    """Lines of YAML being written, with the line span of each schedule."""

    lines: list[str] = field(default_factory=list)
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)

    def comment(self, text: str, indent: str = "") -> None:
        for part in text.split("\n"):
            self.lines.append(f"{indent}# {comment_text(part)}".rstrip())

    def raw_comment(self, text: str, indent: str = "") -> None:
        """A comment kept from the crontab, which already starts with ``#``."""
        kept = comment_text(text.lstrip(" \t"))
        self.lines.append(f"{indent}{kept}".rstrip())

    def add(self, line: str) -> None:
        self.lines.append(line)

    def mark(self, name: str, first_line: int) -> None:
        """Record that schedule ``name`` spans from ``first_line`` to the last line so far."""
        self.spans[name] = (first_line, len(self.lines))

    @property
    def next_line(self) -> int:
        return len(self.lines) + 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass
class Job:
    """A schedule being imported, before it is written."""

    line: int
    name: str
    cron: str
    zone: str | None  # None: the server's local zone, which the crontab does not say
    env: dict[str, str]
    enabled: bool
    command: list[str] | None = None
    shell: str | None = None
    overlap: str | None = None
    timeout: str | None = None
    kill_grace: str | None = None
    timezone: str | None = None  # set when it differs from the catalog's zone
    description: str | None = None  # a trailing shell comment of the crontab line


@dataclass
class Block:
    """Comment lines (each starting with ``#``), then maybe a schedule."""

    comments: list[str] = field(default_factory=list)
    job: Job | None = None

    def note(self, text: str) -> None:
        self.comments.append(f"# {text}")


_INDENT = "  "


def render(
    blocks: list[Block],
    *,
    header: list[str],
    project: str,
    zone: list[str],
    env: dict[str, str] | None = None,
) -> Document:
    """The catalog: ``header`` comments, the top-level keys, then every block in order.

    ``zone`` is the catalog's time zone followed by the comments to put above it;
    ``env``: what every schedule's environment holds alike (``defaults.env``).
    """
    document = Document()
    for line in header:
        document.comment(line)
    document.add("version: 1")
    document.add(f"project: {key(project)}")
    for note in zone[1:]:
        document.comment(note)
    document.add(f"timezone: {quote(zone[0])}")
    if env:
        document.comment("environment lines of the crontab that every schedule below had")
        document.add("defaults:")
        document.add(f"{_INDENT}env: {flow_map(env)}")
    document.add("")
    jobs = [block for block in blocks if block.job is not None]
    document.add("schedules:" if jobs else "schedules: {}")
    after_job = False
    for block in blocks:
        if after_job:
            document.add("")
        for comment in block.comments:
            document.raw_comment(comment, _INDENT)
        after_job = block.job is not None
        if block.job is not None:
            _schedule(document, block.job)
    return document


def _schedule(document: Document, job: Job) -> None:
    first = document.next_line
    inner = _INDENT * 2
    document.add(f"{_INDENT}{key(job.name)}:")
    if job.description:
        document.add(f"{inner}description: {quote(job.description)}")
    document.add(f"{inner}cron: {quote(job.cron)}")
    if job.timezone is not None:
        document.add(f"{inner}timezone: {quote(job.timezone)}")
    if job.command is not None:
        document.add(f"{inner}command: {flow_list(job.command)}")
    elif job.shell is not None:
        value = block_or_quoted(job.shell, _INDENT * 3)
        document.add(f"{inner}shell: {value[0]}")
        for line in value[1:]:
            document.add(line)
    if job.env:
        document.add(f"{inner}env: {flow_map(job.env)}")
    for name, setting in (
        ("overlap", job.overlap),
        ("timeout", job.timeout),
        ("kill_grace", job.kill_grace),
    ):
        if setting is not None:
            document.add(f"{inner}{name}: {key(setting)}")
    if not job.enabled:
        document.add(f"{inner}enabled: false")
    document.mark(job.name, first)
