"""``jobdeck exec``: invoke a command through the running server, as chat would.

The engine runs commands, so this talks to ``jobdeck serve`` (``--server``); the server
checks the params against the applied catalog, records the audit entry and starts the
run. Exit codes: 0 started (with ``--wait``: succeeded), 2 bad params, 1 otherwise.
"""

from __future__ import annotations

import os
import time
from typing import Annotated, Any, NoReturn

import httpx
import typer

from jobdeck.cli.context import EXIT_INVALID, EXIT_REFUSED, fail, print_json, settings
from jobdeck.commands.params import InvalidParams, parse_assignments
from jobdeck.control import current_actor

TOKEN_ENV = "JOBDECK_API_TOKEN"
USER_HEADER = "X-Jobdeck-User"
POLL_SECONDS = 0.2
TERMINAL = {"succeeded", "failed", "timed_out", "skipped", "cancelled", "lost"}


def register(app: typer.Typer) -> None:
    app.command(name="exec")(exec_command)


def exec_command(
    ctx: typer.Context,
    command: Annotated[str, typer.Argument(help="A command of the applied catalog.")],
    params: Annotated[
        list[str] | None, typer.Argument(help="Params as key=value (quote values with spaces).")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run until it ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Invoke a command with params, through the same checks and audit as Slack."""
    try:
        given = parse_assignments(command, params or [])
    except InvalidParams as exc:
        fail(str(exc), EXIT_INVALID)
    server = settings(ctx).server.rstrip("/")
    with httpx.Client(base_url=server, headers=_headers(), timeout=30.0) as client:
        answer = _call(
            client,
            "POST",
            f"/api/v1/commands/{command}/invocations",
            json={"params": given, "via": "cli"},
        )
        if answer.status_code != 201:
            _refused(answer, command)
        run: dict[str, Any] = answer.json()
        if not wait:
            if as_json:
                print_json(run)
            else:
                typer.echo(f"run {run['id']}: {command} {run['status']}")
            return
        if not as_json:
            typer.echo(f"run {run['id']}: {command} started; waiting for it to end")
        while run["status"] not in TERMINAL:
            time.sleep(POLL_SECONDS)
            followed = _call(client, "GET", f"/api/v1/runs/{run['id']}")
            if followed.status_code != 200:
                _refused(followed, command)
            run = followed.json()
    if as_json:
        print_json(run)
    else:
        exit_code = run.get("exit_code")
        duration = run.get("duration_ms")
        shown = f" (exit {exit_code})" if exit_code is not None else ""
        took = f" in {duration:.0f} ms" if isinstance(duration, int | float) else ""
        typer.echo(f"run {run['id']}: {command} {run['status']}{shown}{took}")
    if run["status"] != "succeeded":
        raise typer.Exit(EXIT_REFUSED)


def _headers() -> dict[str, str]:
    headers = {USER_HEADER: current_actor()}
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        return client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        fail(
            f"cannot reach the jobdeck server at {client.base_url} ({exc}); "
            "start it with `jobdeck serve` or point --server (JOBDECK_URL) at it"
        )


def _refused(answer: httpx.Response, command: str) -> NoReturn:
    try:
        error = answer.json().get("error", {})
    except ValueError:
        error = {}
    message = error.get("message") or f"the server answered {answer.status_code}"
    problems = error.get("problems") or []
    if problems:
        lines = [f"  {p['param']}: {p['message']}" for p in problems]
        message = "\n".join([f"bad params for {command}:", *lines])
    fail(message, EXIT_INVALID if answer.status_code == 400 else EXIT_REFUSED)
