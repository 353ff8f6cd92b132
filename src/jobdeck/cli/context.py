"""What every command needs: the global options, the catalog, the store, and output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import typer

from jobdeck.api.views import iso
from jobdeck.catalog.load import CatalogError, LoadedCatalog, load_catalog
from jobdeck.clock import SystemClock
from jobdeck.control import Control, ControlError, current_actor
from jobdeck.store import Store, open_store

EXIT_REFUSED = 1
EXIT_INVALID = 2


@dataclass(frozen=True)
class Settings:
    catalog: Path
    state_dir: Path
    store_url: str | None
    server: str


def settings(ctx: typer.Context) -> Settings:
    found = ctx.find_root().obj
    assert isinstance(found, Settings)
    return found


def load(ctx: typer.Context) -> LoadedCatalog:
    """The catalog file, or every error on stderr and exit 2."""
    try:
        return load_catalog(settings(ctx).catalog)
    except CatalogError as exc:
        for diagnostic in exc.diagnostics:
            typer.echo(str(diagnostic), err=True)
        count = len(exc.diagnostics)
        typer.echo(f"{count} error{'s' if count != 1 else ''}; nothing was changed.", err=True)
        raise typer.Exit(EXIT_INVALID) from None


@contextmanager
def store(ctx: typer.Context) -> Iterator[Store]:
    config = settings(ctx)
    opened = open_store(config.store_url, state_dir=config.state_dir)
    try:
        yield opened
    finally:
        opened.close()


@contextmanager
def control(ctx: typer.Context) -> Iterator[Control]:
    """A Control acting as this terminal's user; ControlError exits 1 with its message."""
    with store(ctx) as opened:
        try:
            yield Control(opened, SystemClock(), current_actor(), "cli")
        except ControlError as exc:
            fail(str(exc), EXIT_REFUSED)


def fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned table (no colours, so that it greps and pipes well)."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
