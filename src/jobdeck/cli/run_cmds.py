"""Runs from the terminal: start or cancel one on the server, list the history, read a log.

``run`` and ``cancel`` ask the running server (the engine that owns the pools); ``runs``
and ``logs`` read the store and the state dir directly, so they work with the server stopped.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jobdeck.cli.context import (
    EXIT_INVALID,
    EXIT_REFUSED,
    JsonFlag,
    fail,
    print_json,
    print_table,
    settings,
    store,
)
from jobdeck.cli.follow import (
    POLL_SECONDS,
    TERMINAL,
    copy_remote_log,
    finish,
    follow,
    get_run,
    refused,
    server_client,
    summary,
)
from jobdeck.cli.output import note, when

if TYPE_CHECKING:
    import httpx

    from jobdeck.store import Store
    from jobdeck.store.node_records import Node

STATUSES = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "skipped",
    "cancelled",
    "lost",
)


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(cancel)
    app.command()(approve)
    app.command()(reject)
    app.command()(runs)
    app.command()(logs)


def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A schedule.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the run: stream its output until it ends.")
    ] = False,
    ignore_overlap: Annotated[
        bool, typer.Option("--ignore-overlap", help="Start even if another run is active.")
    ] = False,
    slot: Annotated[
        str | None,
        typer.Option(
            "--slot",
            help="Re-run this past slot: its nominal time (ISO 8601; no offset: the "
            "schedule's zone) becomes the run's scheduled_for and JOBDECK_SCHEDULED_FOR.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start a run of a schedule now (trigger manual); prints the run id."""
    body: dict[str, Any] = {"ignore_overlap": ignore_overlap, "via": "cli"}
    if slot is not None:
        body["slot"] = slot
    with server_client(ctx) as client:
        response = client.post(f"/api/v1/schedules/{name}/runs", json=body)
        if response.status_code != 201:
            refused(response)
        started: dict[str, Any] = response.json()
        if not as_json:
            typer.echo(str(started["id"]))
        if started["status"] == "skipped":
            hint = " (use --ignore-overlap)" if started["reason"] == "overlap" else ""
            note(f"run {started['id']} was skipped: {started['reason']}{hint}", "skipped")
        if not wait:
            if as_json:
                print_json(started)
            return
        final = follow(client, int(started["id"]), stream=not as_json)
    if as_json:
        print_json(final)
        raise typer.Exit(0 if final["status"] == "succeeded" else EXIT_REFUSED)
    finish(final)


def cancel(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="A run's id (see `jobdeck runs`).")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why; recorded with the run and audited.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Cancel a run: a pending run never starts; a running one gets SIGTERM for its whole
    process tree, SIGKILL after its kill_grace. Waits until it has ended; exits 1 when it
    had ended, or ended by itself before the cancel reached it."""
    with server_client(ctx) as client:
        final = cancel_run(client, run_id, reason)
    by_itself = final["status"] != "cancelled"
    if as_json:
        print_json(final)
    else:
        note(summary(final), final["status"])
    if by_itself:
        # As the API's 409 for a run that had ended: the cancel changed nothing.
        fail(ended_by_itself(final), EXIT_REFUSED)


def ended_by_itself(run: dict[str, Any]) -> str:
    return (
        f"run {run['id']} ended by itself ({run['status']}) before the cancel reached it; "
        "nothing was cancelled"
    )


def approve(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="A command run that waits for approval.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why; recorded.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Approve a command run that waits for a second person (four-eyes); it then starts.
    Only one of the command's approvers may, never the one who asked for it."""
    decide_run(ctx, run_id, "approve", reason, as_json)


def reject(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="A command run that waits for approval.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded with the run.")],
    as_json: JsonFlag = False,
) -> None:
    """Reject a command run that waits for approval: it ends cancelled and never starts."""
    decide_run(ctx, run_id, "reject", reason, as_json)


def decide_run(
    ctx: typer.Context, run_id: int, action: str, reason: str | None, as_json: bool
) -> None:
    with server_client(ctx) as client:
        response = client.post(
            f"/api/v1/runs/{run_id}/{action}", json={"reason": reason, "via": "cli"}
        )
        if response.status_code != 200:
            refused(response)
    done: dict[str, Any] = response.json()
    if as_json:
        print_json(done)
        return
    done_word = "approved" if action == "approve" else "rejected"
    note(f"{summary(done)}: {done_word} by you", done["status"])


def cancel_run(client: httpx.Client, run_id: int, reason: str | None) -> dict[str, Any]:
    """Ask the server to cancel the run and wait for its end; exits 1 when refused (it
    had ended already: nothing changed)."""
    response = client.post(f"/api/v1/runs/{run_id}/cancel", json={"reason": reason, "via": "cli"})
    if response.status_code not in (200, 202):
        refused(response)
    return wait_ended(client, run_id)


def try_cancel(client: httpx.Client, run_id: int, reason: str | None) -> dict[str, Any]:
    """:func:`cancel_run` that goes on when the server refuses (409: the run ended
    meanwhile): the run as it is then, with ``refused``, the server's message."""
    response = client.post(f"/api/v1/runs/{run_id}/cancel", json={"reason": reason, "via": "cli"})
    if response.status_code == 409:
        why = _message(response)
        return {**get_run(client, run_id), "refused": why}
    if response.status_code not in (200, 202):
        refused(response)
    final = wait_ended(client, run_id)
    if final["status"] != "cancelled":
        return {**final, "refused": ended_by_itself(final)}
    return final


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip() or response.reason_phrase


def wait_ended(client: httpx.Client, run_id: int) -> dict[str, Any]:
    while True:
        current = get_run(client, run_id)
        if current["status"] in TERMINAL:
            return current
        time.sleep(POLL_SECONDS)


# -- reading the store directly ------------------------------------------------------------


def runs(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this job's runs.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Only runs in this status.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Run history, newest first."""
    from jobdeck.api.views import duration_ms, run_item
    from jobdeck.catalog.names import closest

    if status is not None and status not in STATUSES:
        fail(f"--status {status!r}: use one of {', '.join(STATUSES)}", EXIT_INVALID)
    with store(ctx) as opened:
        found = opened.runs.runs(job=name, status=status, limit=limit)
        if name is not None and not found and not opened.runs.runs(job=name, limit=1):
            applied = opened.revisions.latest_revision()
            catalog = applied.catalog if applied else {}
            sections = ("schedules", "workers", "commands", "monitors")
            known = [n for s in sections for n in catalog.get(s) or {}]
            if name not in known:
                near = closest(name, known)
                hint = f"; did you mean {near!r}?" if near else ""
                fail(f"no schedule, worker, command or monitor named {name!r} has runs{hint}")
        any_runs = bool(found) or bool(opened.runs.runs(job=name, limit=1))
    if as_json:
        print_json([run_item(r) for r in found])
        return
    if not found:
        of = f" of {name}" if name else ""
        if status is not None and any_runs:
            typer.echo(f"No {status} runs{of} (among the last {limit}).")
        else:
            typer.echo(f"No runs{of} yet.")
        return
    rows = []
    for r in found:
        took = duration_ms(r)
        rows.append(
            (
                r.id,
                r.job,
                r.trigger,
                r.status,
                r.reason,
                r.attempt,
                when(r.started_at),  # none while pending: not its creation time
                format_duration_ms(took),
                r.exit_code,
            )
        )
    headers = ("ID", "JOB", "TRIGGER", "STATUS", "REASON", "ATTEMPT", "STARTED", "TOOK", "EXIT")
    print_table(headers, rows)


def format_duration_ms(took: float | None) -> str | None:
    from jobdeck.units import format_duration

    if took is None:
        return None
    if took < 60_000:
        return f"{took / 1000:.1f}s"
    return format_duration(timedelta(seconds=round(took / 1000)))


def run_log_path(state_dir: Path, run_id: int) -> Path:
    """Where the engine keeps a run's output (the executor's layout)."""
    from jobdeck.execute.spec import LOG_FILE

    return state_dir / "runs" / str(run_id) / LOG_FILE


def logs(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="A run's id (see `jobdeck runs`).")],
    follow: Annotated[
        bool, typer.Option("--follow", "-F", help="Stream new output until the run ends.")
    ] = False,
) -> None:
    """A run's combined stdout and stderr."""
    path = run_log_path(settings(ctx).state_dir, run_id)
    with store(ctx) as opened:
        found = opened.runs.run(run_id)
        if found is None:
            fail(f"no run with id {run_id} (see `jobdeck runs`)", EXIT_REFUSED)
        # In a cluster, a run's log is in the state dir of the node that ran it.
        node = _other_node(ctx, opened, found.host) if not path.parent.exists() else None
        if node is not None and node.url:
            copy_remote_log(node.url, node.id, run_id, follow=follow)
            return
        out = sys.stdout.buffer
        offset = 0
        status: str = found.status
        while True:
            # The status is read before the bytes: once it says the run ended, what is
            # read after it is the whole log.
            ended = status in TERMINAL
            offset = _copy_new(path, offset, out)
            if ended or not follow:
                break
            time.sleep(POLL_SECONDS)
            current = opened.runs.run(run_id)
            status = current.status if current else "lost"
    if offset == 0 and not path.exists():
        reason = "it has not started yet"
        if status != "pending":
            reason = "its log was removed by retention, or it ran on another host"
        typer.echo(f"run {run_id} has no log here ({reason})", err=True)


def _other_node(ctx: typer.Context, opened: Store, host: str | None) -> Node | None:
    """The node of the cluster that ran a run of ``host``, when it is not this state
    dir's own (on PostgreSQL only: an SQLite store has one engine)."""
    import socket

    from jobdeck.instance import instance_name

    config = settings(ctx)
    if host is None or opened.engine.dialect.name != "postgresql":
        return None
    if host == f"{socket.gethostname()}:{instance_name(config.state_dir, config.store_url)}":
        return None
    return opened.nodes.node(host)


def _copy_new(path: Path, offset: int, out: Any) -> int:
    """Write what the log gained since ``offset``; returns the new offset."""
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size < offset:  # cut back under its size cap: go on from the new end
                return size
            file.seek(offset)
            while chunk := file.read(1 << 16):
                out.write(chunk)
                offset += len(chunk)
    except FileNotFoundError:
        return offset
    out.flush()
    return offset
