"""What every command needs: the global options, the catalog, the store, and output helpers.

Only light modules are imported at the top: the engine, the store and the catalog's model
are imported by the verbs that use them, so that ``jobdeck --help`` starts quickly.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from jobdeck.cli.output import JsonFlag, emit, iso, print_json, print_table, table

if TYPE_CHECKING:
    from jobdeck.catalog.load import LoadedCatalog
    from jobdeck.control import Control
    from jobdeck.store import Store

EXIT_REFUSED = 1
EXIT_INVALID = 2

__all__ = [
    "EXIT_INVALID",
    "EXIT_REFUSED",
    "JsonFlag",
    "Settings",
    "control",
    "emit",
    "fail",
    "interactive",
    "iso",
    "load",
    "print_json",
    "print_table",
    "settings",
    "store",
    "table",
]


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
    from jobdeck.catalog.load import CatalogError, load_catalog

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
    from jobdeck.store import open_store

    config = settings(ctx)
    opened = open_store(config.store_url, state_dir=config.state_dir)
    try:
        yield opened
    finally:
        opened.close()


@contextmanager
def control(ctx: typer.Context) -> Iterator[Control]:
    """A Control acting as this terminal's user; ControlError exits 1 with its message."""
    from jobdeck.clock import SystemClock
    from jobdeck.control import Control, ControlError, current_actor

    with store(ctx) as opened:
        try:
            yield Control(opened, SystemClock(), current_actor(), "cli")
        except ControlError as exc:
            fail(str(exc), EXIT_REFUSED)


def fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
