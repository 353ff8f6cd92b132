"""`jobdeck queue stats|redrive`: queue depth, and dead letters back to their source."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from jobdeck.cli.context import JsonFlag, fail, print_json, print_table, store

if TYPE_CHECKING:
    from jobdeck.catalog.model import Catalog

queue_app = typer.Typer(
    name="queue", help="Queue depth and dead-letter redrive.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(queue_app)


def _catalog(revision_catalog: dict[str, object] | None) -> Catalog | None:
    from jobdeck.catalog.model import Catalog

    return None if revision_catalog is None else Catalog.model_validate(revision_catalog)


@queue_app.command("stats")
def stats(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One queue (all when omitted).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Messages visible, in flight and delayed, and dead letters, of each queue."""
    from jobdeck.queues import admin

    with store(ctx) as opened, opened.reading() as tx:
        revision = tx.revisions.latest_revision()
        try:
            only = (
                None
                if name is None
                else admin.resolve(tx, name, _catalog(revision.catalog if revision else None))
            )
        except admin.QueueAdminError as exc:
            fail(str(exc))
        rows = admin.stats(tx, _now_ms(), only)
    if as_json:
        print_json(rows if name is None else rows[0])
        return
    if not rows:
        typer.echo("No queues yet: declare them in the catalog and apply, or create them via SQS.")
        return
    print_table(
        ("NAME", "VISIBLE", "IN FLIGHT", "DELAYED", "DEAD LETTERS", "ORIGIN"),
        [
            (
                r["name"],
                r["visible"],
                r["in_flight"],
                r["delayed"],
                "-"
                if r["dead_lettered"] is None
                else f"{r['dead_lettered']} in {r['dead_letter_queue']}",
                r["origin"],
            )
            for r in rows
        ],
    )


@queue_app.command("redrive")
def redrive(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A dead-letter queue, or a queue that has one.")],
    as_json: JsonFlag = False,
) -> None:
    """Move dead letters back to the queues they came from."""
    from jobdeck.control import current_actor
    from jobdeck.queues import admin
    from jobdeck.store.records import AuditEntry

    now = datetime.now(UTC)
    with store(ctx) as opened, opened.transaction() as tx:
        revision = tx.revisions.latest_revision()
        try:
            wire = admin.resolve(tx, name, _catalog(revision.catalog if revision else None))
            done = admin.redrive(tx, wire, int(now.timestamp() * 1000))
        except admin.QueueAdminError as exc:
            fail(str(exc))
        tx.audit.record_audit(
            AuditEntry(
                at=now,
                actor=current_actor(),
                via="cli",
                action="queue redrive",
                target=f"queue {wire}",
                detail={
                    "moved": done.moved,
                    "stranded": done.stranded,
                    "task": done.task.handle,
                },
            )
        )
    if as_json:
        print_json(
            {
                "dead_letter_queue": done.dead_letter_queue,
                "moved": done.moved,
                "stranded": done.stranded,
                "task": {
                    "handle": done.task.handle,
                    "status": done.task.status,
                    "moved": done.task.moved,
                    "to_move": done.task.to_move,
                    "failure": done.task.failure,
                },
            }
        )
        return
    total = sum(done.moved.values())
    where = ", ".join(f"{count} to {source}" for source, count in done.moved.items())
    typer.echo(
        f"moved {total} message{'s' if total != 1 else ''} out of {done.dead_letter_queue}"
        + (f": {where}" if where else "")
    )
    for source, count in done.stranded.items():
        typer.echo(
            f"left {count} in {done.dead_letter_queue}: their queue {source} no longer exists"
        )


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)
