"""``jobdeck drain`` and ``jobdeck undrain``: take a node out for maintenance, and back."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from jobdeck.cli.context import EXIT_INVALID, EXIT_REFUSED, fail, settings, store

NodeArgument = Annotated[
    str | None,
    typer.Argument(
        help="The node: its id (HOST:INSTANCE, see `jobdeck nodes`) or its instance; "
        "default: the node of this host and state dir.",
    ),
]
TIMEOUT_DEFAULT = "30m"
WAIT_POLL = 0.5


def register(app: typer.Typer) -> None:
    app.command()(drain)
    app.command()(undrain)


def _this_node(ctx: typer.Context) -> str:
    from jobdeck.instance import instance_name

    config = settings(ctx)
    return f"{socket.gethostname()}:{instance_name(config.state_dir, config.store_url)}"


def drain(
    ctx: typer.Context,
    node: NodeArgument = None,
    timeout: Annotated[
        str,
        typer.Option(help="After this, runs still running on the node are cancelled."),
    ] = TIMEOUT_DEFAULT,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is safe to stop.")] = False,
) -> None:
    """The node takes no new runs, hands leadership and its workers over, lets its runs
    finish (cancels them after --timeout), then reports `drained: safe to stop`."""
    from jobdeck.cluster.drain import DrainError, resolve_node, set_drain
    from jobdeck.control import current_actor
    from jobdeck.units import parse_duration

    try:
        limit = parse_duration(timeout)
    except ValueError as exc:
        fail(f"--timeout: {exc}", EXIT_INVALID)
    with store(ctx) as opened:
        try:
            found = resolve_node(opened, node, _this_node(ctx))
        except DrainError as exc:
            fail(str(exc), EXIT_REFUSED)
        now = datetime.now(UTC)
        set_drain(
            opened,
            found.id,
            draining=True,
            timeout=limit,
            actor=current_actor(),
            via="cli",
            now=now,
        )
        typer.echo(
            f"draining node {found.id} (pid {found.pid}): its runs finish, those still "
            f"running after {timeout} are cancelled"
        )
        if not wait:
            typer.echo("see `jobdeck nodes`; it says drained when it is safe to stop")
            return
        deadline = time.monotonic() + limit.total_seconds() + 120
        while time.monotonic() < deadline:
            current = opened.nodes.node(found.id)
            if current is None or not current.draining:
                fail(f"node {found.id} was undrained or removed meanwhile", EXIT_REFUSED)
            if current.drained:
                typer.echo(f"node {found.id} drained: safe to stop")
                return
            time.sleep(WAIT_POLL)
        fail(f"node {found.id} did not report drained in time (is it running?)", EXIT_REFUSED)


def undrain(ctx: typer.Context, node: NodeArgument = None) -> None:
    """The node takes part again: it takes runs and may lead."""
    from jobdeck.cluster.drain import DrainError, resolve_node, set_drain
    from jobdeck.control import current_actor

    with store(ctx) as opened:
        try:
            found = resolve_node(opened, node, _this_node(ctx))
        except DrainError as exc:
            fail(str(exc), EXIT_REFUSED)
        set_drain(
            opened,
            found.id,
            draining=False,
            timeout=None,
            actor=current_actor(),
            via="cli",
            now=datetime.now(UTC),
        )
    typer.echo(f"node {found.id} undrained: it takes part again")
