"""Printing for every verb: plain, stable text when piped; Rich tables and colour on a
terminal (``NO_COLOR`` turns colour off, ``FORCE_COLOR`` turns it on when piped).

Rich is imported only when a terminal gets its output, so that a piped call or
``--help`` starts quickly.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from jobdeck.store.records import Notice

# ``--json`` on any verb that has a result: declare ``as_json: JsonFlag = False`` and end
# with :func:`emit`; the option is then accepted anywhere on the line like the others.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

# The colour of a status (or a word of a plan) on a terminal.
STYLES = {
    "succeeded": "green",
    "ok": "green",
    "enabled": "green",
    "running": "cyan",
    "pending": "cyan",
    "failed": "bold red",
    "timed_out": "bold red",
    "lost": "bold red",
    "refused": "bold red",
    "cancelled": "yellow",
    "skipped": "yellow",
    "disabled": "dim",
    "yes": "green",
    "no": "dim",
}
PLAN_STYLES = {"+": "green", "~": "yellow", "-": "red", "!": "bold yellow"}


def rich_output(stderr: bool = False) -> bool:
    """Whether stdout (or stderr) gets Rich rendering: a terminal, or ``FORCE_COLOR``."""
    if os.environ.get("FORCE_COLOR"):
        return True
    return (sys.stderr if stderr else sys.stdout).isatty()


@cache
def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(
        stderr=stderr,
        highlight=False,
        soft_wrap=True,
        no_color=bool(os.environ.get("NO_COLOR")) or None,
        force_terminal=True if os.environ.get("FORCE_COLOR") else None,
    )


def iso(moment: datetime | None) -> str | None:
    """UTC in ISO 8601 with a ``Z``, as the API writes it."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def when(moment: datetime | str | None) -> str | None:
    """A time for people: UTC, to the second, no microseconds."""
    if moment is None:
        return None
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return str(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def word(value: object) -> str:
    """A cell: None as ``-``, booleans as words."""
    if value is None:
        return "-"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned table (no colours, so that it greps and pipes well)."""
    cells = [[str(h) for h in headers]] + [[word(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A table: plain when piped, a Rich table with coloured statuses on a terminal."""
    plain = table(headers, rows)
    if not rich_output():
        typer.echo(plain)
        return
    from rich.table import Table
    from rich.text import Text

    shown = Table(box=None, header_style="bold", pad_edge=False, show_edge=False)
    for header in headers:
        shown.add_column(header, no_wrap=True)
    for row in rows:
        cells = []
        for cell in row:
            text = word(cell)
            style = STYLES.get(text, "bold yellow" if text.startswith("SUSPENDED") else "")
            cells.append(Text(text, style=style))
        shown.add_row(*cells)
    # As wide as the rows need: a long line wraps in the terminal, as kubectl's do,
    # instead of every cell folding into a narrow column.
    out = console()
    needed = max(len(line) for line in plain.split("\n")) + 2 * len(headers)
    out.width = max(out.width, needed)
    out.print(shown)


def print_plan(text: str) -> None:
    """A plan's text; on a terminal its ``+``, ``~``, ``-`` and ``!`` lines in colour."""
    if not rich_output():
        typer.echo(text)
        return
    from rich.text import Text

    out = console()
    for line in text.split("\n"):
        style = PLAN_STYLES.get(line.strip()[:1], "") if line.startswith("  ") else ""
        if line.startswith("      ") and not line.strip().startswith("!"):
            style = ""
        out.print(Text(line, style=style or ("bold" if line.startswith("Plan:") else "")))


def print_status(text: str, status: str) -> None:
    """A line whose status word is coloured on a terminal."""
    if not rich_output():
        typer.echo(text)
        return
    from rich.text import Text

    line = Text(text)
    line.highlight_words([status], style=STYLES.get(status, ""))
    console().print(line)


def note(message: str, status: str | None = None) -> None:
    """A line for people on stderr (progress, hints), its ``status`` word coloured on a
    terminal."""
    if status is None or not rich_output(stderr=True):
        typer.echo(message, err=True)
        return
    from rich.text import Text

    line = Text(message)
    line.highlight_words([f" {status}"], style=STYLES.get(status, ""))
    console(stderr=True).print(line)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=_json_default))


def emit(as_json: bool, value: Any, text: Callable[[], None]) -> None:
    """A verb's result: ``value`` as JSON with ``--json``, else whatever ``text`` prints."""
    if as_json:
        print_json(value)
    else:
        text()


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def notice_state(n: Notice) -> str:
    """``held back``, ``sent`` (delivered, or sent before notices were an outbox),
    ``due`` (to send, or sent again) or ``given up``."""
    if not n.sent:
        return "held back"
    if n.delivery in (None, "delivered"):
        return "sent"
    return "given up" if n.delivery == "given_up" else "due"
