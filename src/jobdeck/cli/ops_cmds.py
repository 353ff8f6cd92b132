"""Operating what runs: suspend, resume, status, audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from jobdeck.api.views import audit_json, iso
from jobdeck.catalog.plan import suspension_json
from jobdeck.cli.catalog_cmds import JsonFlag, TargetOption
from jobdeck.cli.context import control, fail, load, print_json, store, table
from jobdeck.status import collect_status
from jobdeck.units import parse_until

KindOption = Annotated[
    str | None,
    typer.Option("--kind", help="schedule, worker or command, when a name is used by several."),
]


def register(app: typer.Typer) -> None:
    app.command()(suspend)
    app.command()(resume)
    app.command()(status)
    app.command()(audit)


def suspend(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A schedule, worker or command.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; shown to everyone.")],
    until: Annotated[
        str | None, typer.Option("--until", help="Expiry: a duration (2h) or an ISO time.")
    ] = None,
    kind: KindOption = None,
    as_json: JsonFlag = False,
    target: TargetOption = "local",
) -> None:
    """Emergency stop: recorded with who and when; no apply ever clears it."""
    from jobdeck.cli import aws_state

    if aws_state.check_target(target):
        held = aws_state.suspend(load(ctx), name, reason, until, _kind(kind))
        if as_json:
            print_json(held.json())
            return
        expires = f" until {held.json()['until']}" if held.until else ""
        typer.echo(f"suspended {held.kind} {held.name} in AWS{expires}: {held.reason}")
        return
    with control(ctx) as ctl:
        expiry = _until(until, ctl.clock.now()) if until else None
        done = ctl.suspend(name, reason, until=expiry, kind=_kind(kind))
    if as_json:
        print_json(suspension_json(done))
        return
    expires = f" until {iso(done.until)}" if done.until else " until `jobdeck resume`"
    typer.echo(f"suspended {done.kind} {done.name}{expires}: {done.reason}")


def resume(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A suspended schedule, worker or command.")],
    kind: KindOption = None,
    as_json: JsonFlag = False,
    target: TargetOption = "local",
) -> None:
    """End a suspension."""
    from jobdeck.cli import aws_state

    if aws_state.check_target(target):
        held = aws_state.resume(load(ctx), name, _kind(kind))
        if as_json:
            print_json(held.json())
            return
        typer.echo(f"resumed {held.kind} {held.name} in AWS (was suspended: {held.reason})")
        return
    with control(ctx) as ctl:
        done = ctl.resume(name, kind=_kind(kind))
    if as_json:
        print_json(suspension_json(done))
        return
    typer.echo(f"resumed {done.kind} {done.name} (was suspended: {done.reason})")


def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """What the applied revision runs: schedules, workers, commands, queues, pools."""
    with store(ctx) as opened:
        now = datetime.now(UTC)
        with opened.reading() as tx:
            depth = tx.queue_counts(int(now.timestamp() * 1000))
            live = tx.worker_overview()
        report = collect_status(opened.latest_revision(), opened.suspensions(now), now, depth, live)
    if as_json:
        print_json(report)
        return
    if report["revision"] is None:
        typer.echo("Nothing applied yet: run `jobdeck plan`, then `jobdeck apply`.")
        return
    rev = report["revision"]
    typer.echo(f"Revision {rev['number']}, applied {iso(rev['applied_at'])} by {rev['applied_by']}")
    sections: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]] = [
        (
            "Schedules",
            ("NAME", "TRIGGER", "ZONE", "NEXT FIRE", "STATE"),
            [
                (s["name"], s["trigger"], s["timezone"], s["next_fire_local"], _state(s))
                for s in report["schedules"]
            ],
        ),
        (
            "Workers",
            ("NAME", "DESIRED", "RUNNING", "RESTARTS", "LAST EXIT", "QUEUE", "SCALING", "STATE"),
            [
                (
                    w["name"],
                    _desired(w),
                    w["running"],
                    w["restarts"],
                    _last_exit(w["last_exit"]),
                    w["queue"],
                    _scaling(w["autoscale_decision"]),
                    _state(w),
                )
                for w in report["workers"]
            ],
        ),
        (
            "Commands",
            ("NAME", "POOL", "STATE"),
            [(c["name"], c["pool"], _state(c)) for c in report["commands"]],
        ),
        (
            "Queues",
            ("NAME", "VISIBLE", "IN FLIGHT", "DEAD-LETTERED", "VISIBILITY", "MAX RECEIVES"),
            [
                (
                    q["wire_name"],
                    q["visible"],
                    q["in_flight"],
                    q["dead_lettered"],
                    q["visibility_timeout"],
                    q["max_receive_count"],
                )
                for q in report["queues"]
            ],
        ),
        (
            "Pools",
            ("NAME", "MEMORY", "CPUS", "CONCURRENCY", "PRIORITY", "WARM"),
            [
                (p["name"], p["memory"], p["cpus"], p["max_concurrency"], p["priority"], p["warm"])
                for p in report["pools"]
            ],
        ),
    ]
    for title, headers, rows in sections:
        if rows:
            typer.echo(f"\n{title}")
            typer.echo(table(headers, rows))


def audit(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonFlag = False,
    target: TargetOption = "local",
) -> None:
    """Who invoked, suspended, resumed and applied what, from where, and the outcome."""
    from jobdeck.cli import aws_state

    if aws_state.check_target(target):
        aws_state.show_audit(load(ctx), limit, as_json)
        return
    with store(ctx) as opened:
        entries = opened.audit(limit)
    if as_json:
        print_json([audit_json(e) for e in entries])
        return
    rows = [
        (iso(e.at), e.actor, e.via, e.action, e.target, e.outcome, _detail(e.detail))
        for e in entries
    ]
    typer.echo(table(("AT", "WHO", "VIA", "ACTION", "TARGET", "OUTCOME", "DETAIL"), rows))


def _until(text: str, now: datetime) -> datetime:
    try:
        return parse_until(text, now)
    except ValueError:
        fail(f"--until {text!r}: give a duration such as 2h or an ISO time", 2)


def _kind(kind: str | None) -> str | None:
    if kind is not None and kind not in ("schedule", "worker", "command"):
        fail(f"--kind {kind!r}: use schedule, worker or command", 2)
    return kind


def _state(item: dict[str, Any]) -> str:
    suspension = item.get("suspension")
    if suspension:
        until = f" until {suspension['until']}" if suspension["until"] else ""
        return f"SUSPENDED by {suspension['created_by']}{until}: {suspension['reason']}"
    return "enabled" if item.get("enabled", True) else "disabled"


def _desired(worker: dict[str, Any]) -> str:
    scale = worker["autoscale"]
    if scale:
        return f"{worker['desired']} of {scale['min']}..{scale['max']} (autoscale)"
    return str(worker["desired"]) + (" (singleton)" if worker["singleton"] else "")


def _last_exit(last: dict[str, Any] | None) -> str | None:
    """``run 12 failed (exit 1) at ...; backoff 4s``: a crash loop at a glance."""
    if not last:
        return None
    how = f"exit {last['exit_code']}" if last.get("exit_code") is not None else last["reason"]
    return (
        f"run {last['run']} {last['status']} ({how}) at {last['at']}; "
        f"backoff {last['restart_in_s']:g}s"
    )


def _scaling(decision: dict[str, Any] | None) -> str | None:
    """The latest autoscale decision; for a singleton, a lease that another engine holds."""
    if not decision:
        return None
    shown = []
    if "action" in decision:
        shown.append(f"{decision['action']} -> {decision['desired']}: {decision['reason']}")
    if "lease" in decision:
        shown.append(f"waiting for the lease: {decision['lease']}")
    return "; ".join(shown) or None


def _detail(detail: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items() if v is not None)
