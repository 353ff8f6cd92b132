"""``jobdeck exec``: invoke a command through the running server, as chat would.

The engine runs commands, so this talks to ``jobdeck serve`` (``--server``); the server
checks the params against the applied catalog, records the audit entry and starts the
run. Exit codes: 0 started (with ``--wait``: succeeded), 2 bad params, 1 otherwise.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from jobdeck.cli.context import EXIT_INVALID, EXIT_REFUSED, JsonFlag, fail, print_json
from jobdeck.cli.follow import finish, follow, refused, server_client
from jobdeck.cli.output import print_status


def register(app: typer.Typer) -> None:
    app.command(name="exec")(exec_command)


def exec_command(
    ctx: typer.Context,
    command: Annotated[str, typer.Argument(help="A command of the applied catalog.")],
    params: Annotated[
        list[str] | None, typer.Argument(help="Params as key=value (quote values with spaces).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the run: stream its output until it ends.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Invoke a command with params, through the same checks and audit as Slack."""
    from jobdeck.catalog.params import InvalidParams, parse_assignments

    try:
        given = parse_assignments(command, params or [])
    except InvalidParams as exc:
        fail(str(exc), EXIT_INVALID)
    with server_client(ctx) as client:
        answer = client.post(
            f"/api/v1/commands/{command}/invocations", json={"params": given, "via": "cli"}
        )
        if answer.status_code != 201:
            refused(answer, command)
        run: dict[str, Any] = answer.json()
        if run.get("reason") == "approval" and not as_json:
            note_approval(run, command)
        if not wait:
            if as_json:
                print_json(run)
            else:
                print_status(f"run {run['id']}: {command} {run['status']}", run["status"])
            return
        if not as_json:
            typer.echo(f"run {run['id']}: {command} started; following it", err=True)
        final = follow(client, int(run["id"]), stream=not as_json)
    if as_json:
        print_json(final)
        raise typer.Exit(0 if final["status"] == "succeeded" else EXIT_REFUSED)
    finish(final)


def note_approval(run: dict[str, Any], command: str) -> None:
    """Tells on stderr that the run waits for a second person, who, and until when."""
    approval = run.get("approval") or {}
    who = [*approval.get("users", []), *(f"group {g}" for g in approval.get("usergroups", []))]
    typer.echo(
        f"run {run['id']}: {command} needs approval by {', '.join(who) or 'an approver'} "
        f"(not you) before {approval.get('expires_at', '?')}; they run "
        f"`jobdeck approve {run['id']}` or `jobdeck reject {run['id']} --reason ...`",
        err=True,
    )
