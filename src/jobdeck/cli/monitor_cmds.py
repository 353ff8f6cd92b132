"""Monitors of jobs jobdeck does not run: ``monitors`` (their ping URLs) and ``migrate``
(a monitor becomes the schedule)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Annotated, Any

import typer

from jobdeck.cli.context import EXIT_INVALID, JsonFlag, emit, fail, load, print_table, settings


def register(app: typer.Typer) -> None:
    app.command()(monitors)
    app.command()(migrate)


def migrate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A monitor of the catalog.")],
) -> None:
    """Turn a monitor into the schedule that runs its job (rewrites the catalog file; its
    history stays); then plan, apply, and remove the job's line from the crontab."""
    from jobdeck.catalog.load import CatalogError
    from jobdeck.catalog.migrate import MigrateError, migrate_monitor

    path = settings(ctx).catalog
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", EXIT_INVALID)
    try:
        migrated = migrate_monitor(text, name, str(path))
    except MigrateError as exc:
        fail(str(exc), EXIT_INVALID)
    except CatalogError as exc:
        fail(f"the migrated catalog would not load, so {path} is unchanged:\n{exc}", EXIT_INVALID)
    staged = path.with_name(f".{path.name}.migrate")
    try:
        staged.write_text(migrated, encoding="utf-8")
        os.replace(staged, path)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    typer.echo(
        f"monitor {name} is now schedule {name} in {path}; its runs so far stay its history.\n"
        "next: `jobdeck plan`, `jobdeck apply`, then remove the job's line from the crontab "
        "(the one that pings /ping/" + name + "/...), so that it does not run twice"
    )


def monitors(
    ctx: typer.Context,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="The server's address as the watched hosts reach it (default: --server).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The catalog's monitors with their ping URLs (secret: each holds its monitor's token)."""
    from jobdeck.api.ping_tokens import KEY_HINT, ping_keys, token_for
    from jobdeck.catalog.load import CatalogError
    from jobdeck.units import format_duration

    try:
        loaded = load(ctx)
    except CatalogError as exc:
        fail(str(exc), EXIT_INVALID)
    keys = ping_keys(os.environ)
    base = (base_url or settings(ctx).server).rstrip("/")
    found: list[dict[str, Any]] = []
    for name, spec in loaded.catalog.monitors.items():
        url = f"{base}/ping/{name}/{token_for(keys[0], name)}" if keys else None
        found.append(
            {
                "name": name,
                "when": spec.cron or f"every {format_duration(spec.rate or timedelta(0))}",
                "timezone": spec.timezone,
                "grace": format_duration(spec.grace),
                "timeout": format_duration(spec.timeout),
                "ping": url,
                "start": f"{url}/start" if url else None,
                "success": f"{url}/success" if url else None,
                "fail": f"{url}/fail" if url else None,
            }
        )
    if not keys:
        typer.echo(f"no ping URLs: the server refuses every ping until you {KEY_HINT}", err=True)

    def text() -> None:
        if not found:
            typer.echo("no monitors in the catalog")
            return
        print_table(
            ["MONITOR", "WHEN", "GRACE", "TIMEOUT", "PING URL (+ /start, /fail, ?exit=N)"],
            [
                [
                    item["name"],
                    item["when"] + (f" ({item['timezone']})" if item["timezone"] else ""),
                    item["grace"],
                    item["timeout"],
                    item["ping"] or "-",
                ]
                for item in found
            ],
        )

    emit(as_json, found, text)
