"""Runs from the terminal: start or cancel one on the server, list the history, read a log.

``run`` and ``cancel`` ask the running server (the engine that owns the pools); ``runs``
and ``logs`` read the store and the state dir directly, so they work with the server stopped.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn, get_args

import httpx
import typer

from jobdeck.api.views import duration_ms, iso, run_item
from jobdeck.cli.catalog_cmds import JsonFlag
from jobdeck.cli.context import EXIT_INVALID, EXIT_REFUSED, fail, print_json, settings, store, table
from jobdeck.control import current_actor
from jobdeck.execute.spec import LOG_FILE
from jobdeck.store.records import TERMINAL_STATUSES, RunStatus
from jobdeck.units import format_duration

TOKEN_ENV = "JOBDECK_API_TOKEN"
USER_HEADER = "X-Jobdeck-User"
# How often a follower looks for new output or a new status: quick enough to feel live.
POLL_SECONDS = 0.25
REQUEST_TIMEOUT = 30.0


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(cancel)
    app.command()(runs)
    app.command()(logs)


# -- talking to the server -----------------------------------------------------------------


@contextmanager
def server_client(ctx: typer.Context) -> Iterator[httpx.Client]:
    """A client of the server at ``--server``; an unreachable server exits 1 saying so."""
    url = settings(ctx).server.rstrip("/")
    headers = {USER_HEADER: current_actor()}
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT) as client:
            yield client
    except httpx.TransportError as exc:
        fail(
            f"no jobdeck server answers at {url} ({exc or type(exc).__name__}); "
            "start one with `jobdeck serve` (or point --server / JOBDECK_URL at it)"
        )


def _refused(response: httpx.Response) -> NoReturn:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text.strip() or response.reason_phrase
    if response.status_code == 401:
        message += f" (set {TOKEN_ENV} to the server's token)"
    fail(str(message), EXIT_REFUSED)


def _get_run(client: httpx.Client, run_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/runs/{run_id}")
    if response.status_code != 200:
        _refused(response)
    found: dict[str, Any] = response.json()
    return found


def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A schedule.")],
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run to its end.")] = False,
    ignore_overlap: Annotated[
        bool, typer.Option("--ignore-overlap", help="Start even if another run is active.")
    ] = False,
) -> None:
    """Start a run of a schedule now (trigger manual); prints the run id."""
    with server_client(ctx) as client:
        response = client.post(
            f"/api/v1/schedules/{name}/runs",
            json={"ignore_overlap": ignore_overlap, "via": "cli"},
        )
        if response.status_code != 201:
            _refused(response)
        started: dict[str, Any] = response.json()
        typer.echo(str(started["id"]))
        if started["status"] == "skipped":
            hint = " (use --ignore-overlap)" if started["reason"] == "overlap" else ""
            typer.echo(f"run {started['id']} was skipped: {started['reason']}{hint}", err=True)
        if not wait:
            return
        final = _follow(client, int(started["id"]))
    raise typer.Exit(0 if final["status"] == "succeeded" else 1)


def cancel(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="A run's id (see `jobdeck runs`).")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why; recorded with the run and audited.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Cancel a run: a pending run never starts; a running one gets SIGTERM for its whole
    process tree, SIGKILL after its kill_grace. Waits until it has ended."""
    with server_client(ctx) as client:
        final = cancel_run(client, run_id, reason)
    if as_json:
        print_json(final)
        return
    typer.echo(f"run {run_id}: {_outcome(final)}")


def cancel_run(client: httpx.Client, run_id: int, reason: str | None) -> dict[str, Any]:
    """Ask the server to cancel the run and wait for its end; exits 1 when refused (it
    had ended already: nothing changed)."""
    response = client.post(f"/api/v1/runs/{run_id}/cancel", json={"reason": reason, "via": "cli"})
    if response.status_code not in (200, 202):
        _refused(response)
    while True:
        current = _get_run(client, run_id)
        if current["status"] in TERMINAL_STATUSES:
            return current
        time.sleep(POLL_SECONDS)


def _follow(client: httpx.Client, run_id: int) -> dict[str, Any]:
    """Wait for the run, and for the retries it leads to, to end; returns the last."""
    shown = ""
    while True:
        current = _get_run(client, run_id)
        status = current["status"]
        if status != shown:
            shown = status
            if status not in TERMINAL_STATUSES:
                typer.echo(f"run {run_id}: {status}", err=True)
        if status in TERMINAL_STATUSES:
            later = [a for a in current["attempts"] if a["attempt"] > current["attempt"]]
            typer.echo(f"run {run_id}: {_outcome(current)}", err=True)
            if not later:
                return current
            run_id = int(later[0]["id"])
            typer.echo(f"retried as run {run_id} (attempt {later[0]['attempt']})", err=True)
            shown = ""
            continue
        time.sleep(POLL_SECONDS)


def _outcome(run_json: dict[str, Any]) -> str:
    parts = [run_json["status"]]
    if run_json.get("reason"):
        parts.append(f"({run_json['reason']})")
    if run_json.get("exit_code") is not None:
        parts.append(f"exit {run_json['exit_code']}")
    took = run_json.get("duration_ms")
    if took is not None:
        parts.append(f"after {took / 1000:.1f}s")
    return " ".join(parts)


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
    statuses = get_args(RunStatus)
    if status is not None and status not in statuses:
        fail(f"--status {status!r}: use one of {', '.join(statuses)}", EXIT_INVALID)
    with store(ctx) as opened:
        found = opened.runs(job=name, status=status, limit=limit)
    if as_json:
        print_json([run_item(r) for r in found])
        return
    if not found:
        typer.echo("No runs" + (f" of {name}" if name else "") + " yet.")
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
                iso(r.started_at),  # none while pending: not its creation time
                format_duration_ms(took),
                r.exit_code,
            )
        )
    headers = ("ID", "JOB", "TRIGGER", "STATUS", "REASON", "ATTEMPT", "STARTED", "TOOK", "EXIT")
    typer.echo(table(headers, rows))


def format_duration_ms(took: float | None) -> str | None:
    if took is None:
        return None
    if took < 60_000:
        return f"{took / 1000:.1f}s"
    return format_duration(timedelta(seconds=round(took / 1000)))


def run_log_path(state_dir: Path, run_id: int) -> Path:
    """Where the engine keeps a run's output (the executor's layout)."""
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
        found = opened.run(run_id)
        if found is None:
            fail(f"no run with id {run_id} (see `jobdeck runs`)", EXIT_REFUSED)
        out = sys.stdout.buffer
        offset = 0
        status: str = found.status
        while True:
            # The status is read before the bytes: once it says the run ended, what is
            # read after it is the whole log.
            ended = status in TERMINAL_STATUSES
            offset = _copy_new(path, offset, out)
            if ended or not follow:
                break
            time.sleep(POLL_SECONDS)
            current = opened.run(run_id)
            status = current.status if current else "lost"
    if offset == 0 and not path.exists():
        reason = "it has not started yet"
        if status != "pending":
            reason = "its log was removed by retention, or it ran on another host"
        typer.echo(f"run {run_id} has no log here ({reason})", err=True)


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
