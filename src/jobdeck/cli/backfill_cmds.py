"""``jobdeck backfill``: one run per past slot of a schedule, asked of the running server."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from jobdeck.cli.context import JsonFlag, print_json, print_table
from jobdeck.cli.follow import refused, server_client
from jobdeck.cli.output import note, when


def register(app: typer.Typer) -> None:
    app.command()(backfill)


def backfill(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A schedule.")],
    from_: Annotated[
        str,
        typer.Option(
            "--from", help="First instant, ISO 8601 (no offset: the schedule's zone); included."
        ),
    ],
    to: Annotated[
        str, typer.Option("--to", help="Last instant, ISO 8601, not in the future; included.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the slots and what would run; change nothing.")
    ] = False,
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Run also the slots that already have a run.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """One run per slot of a schedule in [--from, --to] (trigger backfill), oldest first,
    queued behind each other, each with its slot as JOBDECK_SCHEDULED_FOR. A slot that
    already has a run is left alone unless --rerun. At most 1,000 slots per call."""
    with server_client(ctx) as client:
        response = client.post(
            f"/api/v1/schedules/{name}/backfill",
            json={"from": from_, "to": to, "dry_run": dry_run, "rerun": rerun, "via": "cli"},
        )
    if response.status_code not in (200, 201):
        refused(response)
    done: dict[str, Any] = response.json()
    if as_json:
        print_json(done)
        return
    rows = []
    for slot in done["slots"]:
        run, existing = slot["run"], slot["existing_run"]
        status = ""
        if run is not None:
            status = run["status"] + (f" ({run['reason']})" if run["reason"] else "")
        rows.append(
            (
                when(slot["slot"]) or "",
                slot["action"],
                "" if existing is None else str(existing),
                "" if run is None else str(run["id"]),
                status,
            )
        )
    if rows:
        print_table(("SLOT (UTC)", "ACTION", "EXISTING RUN", "RUN", "STATUS"), rows)
    verb = "would run" if done["dry_run"] else "queued"
    message = (
        f"{name}: {len(done['slots'])} slot(s) from {when(done['from'])} to {when(done['to'])}: "
        f"{done['to_run']} {verb}, {done['kept']} left alone (already run"
        + ("" if rerun else "; --rerun runs them again")
        + ")"
    )
    note(message, "pending" if done["to_run"] else "skipped")
