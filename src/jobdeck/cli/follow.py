"""Talking to the running server, and following a run to its end (``run --wait`` and
``exec --wait``): its output streams to stdout as it is written, progress goes to stderr,
and one summary line ends it, in the same format for a schedule and a command."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

import typer

from jobdeck.cli.context import EXIT_INVALID, EXIT_REFUSED, fail, settings
from jobdeck.cli.output import note

if TYPE_CHECKING:
    import httpx

TOKEN_ENV = "JOBDECK_API_TOKEN"
USER_HEADER = "X-Jobdeck-User"
STATUS_HEADER = "X-Jobdeck-Run-Status"
OFFSET_HEADER = "X-Jobdeck-Log-Offset"
SIZE_HEADER = "X-Jobdeck-Log-Size"
# How often a follower looks for new output or a new status: quick enough to feel live.
POLL_SECONDS = 0.2
REQUEST_TIMEOUT = 30.0
# The store's terminal statuses (kept here: importing the store costs the CLI's start).
TERMINAL = frozenset({"succeeded", "failed", "timed_out", "skipped", "cancelled", "lost"})


@contextmanager
def server_client(ctx: typer.Context) -> Iterator[httpx.Client]:
    """A client of the server at ``--server``; an unreachable server exits 1 saying so."""
    import httpx

    from jobdeck.control import current_actor

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


def refused(response: httpx.Response, subject: str | None = None) -> NoReturn:
    """The server's error: its message (bad params listed), exit 2 for a bad request."""
    try:
        error = response.json()["error"]
        message = str(error["message"])
        problems = error.get("problems") or []
    except (ValueError, KeyError, TypeError):
        message = response.text.strip() or response.reason_phrase
        problems = []
    if problems:
        lines = [f"  {p['param']}: {p['message']}" for p in problems]
        message = "\n".join([f"bad params for {subject}:", *lines])
    if response.status_code == 401:
        message += f" (set {TOKEN_ENV} to the server's token)"
    fail(message, EXIT_INVALID if response.status_code == 400 else EXIT_REFUSED)


def get_run(client: httpx.Client, run_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/runs/{run_id}")
    if response.status_code != 200:
        refused(response)
    found: dict[str, Any] = response.json()
    return found


def follow(client: httpx.Client, run_id: int, *, stream: bool = True) -> dict[str, Any]:
    """Stream the run's output until it ends, then the retries it leads to; returns the
    last attempt. Each attempt's end is one summary line on stderr."""
    out = sys.stdout.buffer
    while True:
        current = _stream_log(client, run_id, out if stream else None)
        later = [a for a in current["attempts"] if a["attempt"] > current["attempt"]]
        if not later:
            return current
        note(summary(current), current["status"])
        run_id = int(later[0]["id"])
        note(f"retried as run {run_id} (attempt {later[0]['attempt']})")


def _stream_log(client: httpx.Client, run_id: int, out: BinaryIO | None) -> dict[str, Any]:
    """Copy the run's log from the server as it grows; the run once it has ended."""
    offset = 0
    while True:
        response = client.get(f"/api/v1/runs/{run_id}/log", params={"offset": offset})
        if response.status_code != 200:
            refused(response)
        status = response.headers.get(STATUS_HEADER, "")
        following = int(response.headers.get(OFFSET_HEADER, offset))
        size = int(response.headers.get(SIZE_HEADER, following))
        if response.content and out is not None:
            out.write(response.content)
            out.flush()
        offset = following
        if status in TERMINAL and offset >= size:
            return get_run(client, run_id)
        if offset >= size:
            time.sleep(POLL_SECONDS)


def copy_remote_log(url: str, node: str, run_id: int, *, follow: bool) -> int:
    """A run's log as the node that ran it (at ``url``) serves it, with this user's own
    credentials; to the run's end with ``follow``. Returns the bytes copied."""
    import httpx

    from jobdeck.control import current_actor

    headers = {USER_HEADER: current_actor()}
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    out = sys.stdout.buffer
    offset = 0
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT) as client:
            while True:
                response = client.get(f"/api/v1/runs/{run_id}/log", params={"offset": offset})
                if response.status_code != 200:
                    refused(response)
                status = response.headers.get(STATUS_HEADER, "")
                following = int(response.headers.get(OFFSET_HEADER, offset))
                size = int(response.headers.get(SIZE_HEADER, following))
                out.write(response.content)
                out.flush()
                offset = following
                if offset >= size and (not follow or status in TERMINAL):
                    return offset
                if offset >= size:
                    time.sleep(POLL_SECONDS)
    except httpx.TransportError as exc:
        fail(
            f"run {run_id} ran on node {node}, whose API does not answer at {url} "
            f"({exc or type(exc).__name__})"
        )


def summary(run: dict[str, Any]) -> str:
    """``run 12: nightly-report failed (exit 3) after 4.2s``; without an exit code, the
    reason: ``(timeout)``, ``(overlap)``."""
    parts = [f"run {run['id']}: {run['job']} {run['status']}"]
    if run.get("exit_code") is not None:
        parts.append(f"(exit {run['exit_code']})")
    elif run.get("reason"):
        parts.append(f"({run['reason']})")
    took = run.get("duration_ms")
    if took is not None:
        parts.append(f"after {took / 1000:.1f}s")
    return " ".join(parts)


def finish(run: dict[str, Any]) -> NoReturn:
    """The summary line; exit 0 when the run succeeded, else 1 with where its output is."""
    note(summary(run), run["status"])
    if run["status"] == "succeeded":
        raise typer.Exit(0)
    note(f"see its output with: jobdeck logs {run['id']}")
    raise typer.Exit(EXIT_REFUSED)
