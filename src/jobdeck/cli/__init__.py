"""The ``jobdeck`` command line: parse, call the application, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobdeck.cli import (
    catalog_cmds,
    deploy_cmds,
    exec_cmds,
    ops_cmds,
    queue_cmds,
    run_cmds,
    serve_cmds,
)
from jobdeck.cli.context import Settings

app = typer.Typer(
    name="jobdeck",
    help="Cron batches, queue workers and chat-triggered commands from one reviewed file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def main_options(
    ctx: typer.Context,
    catalog: Annotated[Path, typer.Option("-f", "--catalog", help="The catalog file.")] = Path(
        "jobdeck.yaml"
    ),
    state_dir: Annotated[
        Path,
        typer.Option(envvar="JOBDECK_STATE_DIR", help="Holds the SQLite store and run logs."),
    ] = Path(".jobdeck"),
    store: Annotated[
        str | None,
        typer.Option("--store", envvar="JOBDECK_STORE", help="A store URL (postgresql://...)."),
    ] = None,
    server: Annotated[
        str, typer.Option(envvar="JOBDECK_URL", help="A running jobdeck server.")
    ] = "http://127.0.0.1:8080",
) -> None:
    ctx.obj = Settings(catalog=catalog, state_dir=state_dir, store_url=store, server=server)


catalog_cmds.register(app)
ops_cmds.register(app)
exec_cmds.register(app)
run_cmds.register(app)
serve_cmds.register(app)
queue_cmds.register(app)
deploy_cmds.register(app)


def main() -> None:
    app()
