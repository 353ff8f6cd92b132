"""The ``jobdeck`` command line: parse, call the application, print.

Every verb lives in one of the ``*_cmds`` modules and is registered by its ``register``.
The global options (``-f/--catalog``, ``--state-dir``, ``--store``, ``--server``) are
accepted anywhere on the line: :func:`hoist` moves them before the verb. A verb with a
result takes ``as_json: JsonFlag = False`` and prints through ``output.emit``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from jobdeck.cli import (
    backfill_cmds,
    catalog_cmds,
    cluster_cmds,
    deploy_cmds,
    exec_cmds,
    monitor_cmds,
    ops_cmds,
    queue_cmds,
    run_cmds,
    serve_cmds,
)
from jobdeck.cli.context import Settings
from jobdeck.cli.output import JsonFlag, emit

# The global options that take a value, which may come anywhere on the line.
GLOBAL_OPTIONS = ("-f", "--catalog", "--state-dir", "--store", "--server")

app = typer.Typer(
    name="jobdeck",
    help="Cron batches, queue workers and chat-triggered commands from one reviewed file.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jobdeck")
    except PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"jobdeck {package_version()}")
        raise typer.Exit(0)


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
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    ctx.obj = Settings(catalog=catalog, state_dir=state_dir, store_url=store, server=server)


@app.command("version")
def version_command(as_json: JsonFlag = False) -> None:
    """The version of jobdeck and of the Python it runs on."""
    import platform

    found = {"jobdeck": package_version(), "python": platform.python_version()}
    emit(
        as_json,
        found,
        lambda: typer.echo(f"jobdeck {found['jobdeck']} (Python {found['python']})"),
    )


catalog_cmds.register(app)
ops_cmds.register(app)
monitor_cmds.register(app)
exec_cmds.register(app)
run_cmds.register(app)
backfill_cmds.register(app)
serve_cmds.register(app)
queue_cmds.register(app)
deploy_cmds.register(app)
cluster_cmds.register(app)


def hoist(args: Sequence[str]) -> list[str]:
    """The global options moved before the verb, wherever they were given; what follows a
    ``--`` stays as it is."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        name = arg.split("=", 1)[0]
        if arg.startswith("--") and "=" in arg and name in GLOBAL_OPTIONS:
            front.append(arg)
        elif arg in GLOBAL_OPTIONS and index + 1 < len(args):
            front.extend(args[index : index + 2])
            index += 1
        elif arg.startswith("-f") and not arg.startswith("--") and len(arg) > 2:
            front.append(arg)
        else:
            rest.append(arg)
        index += 1
    return front + rest


def main() -> None:
    app(args=hoist(sys.argv[1:]), prog_name="jobdeck")
