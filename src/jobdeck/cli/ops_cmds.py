"""Operating what runs: suspend, resume, status, audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jobdeck.cli.catalog_cmds import TargetOption
from jobdeck.cli.context import (
    JsonFlag,
    control,
    fail,
    iso,
    load,
    print_json,
    print_table,
    settings,
    store,
)
from jobdeck.cli.output import notice_state, when

if TYPE_CHECKING:
    from jobdeck.status import Activity
    from jobdeck.store import Store
    from jobdeck.store.records import Revision, RunKind

KindOption = Annotated[
    str | None,
    typer.Option("--kind", help="schedule, worker, command or monitor, when ambiguous."),
]


def register(app: typer.Typer) -> None:
    app.command()(suspend)
    app.command()(resume)
    app.command()(status)
    app.command()(audit)
    app.command()(notices)
    app.command()(nodes)


def suspend(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A schedule, worker, command or monitor.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; shown to everyone.")],
    until: Annotated[
        str | None, typer.Option("--until", help="Expiry: a duration (2h) or an ISO time.")
    ] = None,
    kind: KindOption = None,
    cancel_running: Annotated[
        bool,
        typer.Option(
            "--cancel-running",
            help="Also cancel the schedule's or command's runs that have not ended "
            "(through the server); a worker's processes stop with the suspension anyway.",
        ),
    ] = False,
    as_json: JsonFlag = False,
    target: TargetOption = "local",
) -> None:
    """Emergency stop: recorded with who and when; no apply ever clears it."""
    from jobdeck.catalog.plan import suspension_json
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
    cancelled: list[dict[str, Any]] = []
    if cancel_running and done.kind not in ("worker", "monitor"):
        cancelled = _cancel_active(ctx, done.kind, done.name, f"suspended: {done.reason}")
    if as_json:
        shown = suspension_json(done)
        if cancel_running:
            shown["cancelled_runs"] = cancelled
        print_json(shown)
        return
    expires = f" until {iso(done.until)}" if done.until else " until `jobdeck resume`"
    typer.echo(f"suspended {done.kind} {done.name}{expires}: {done.reason}")
    for run in cancelled:
        if "refused" in run:  # it ended meanwhile: nothing to cancel, the others go on
            typer.echo(f"run {run['id']}: not cancelled: {run['refused']}")
            continue
        typer.echo(f"run {run['id']}: {run['status']} ({run['reason'] or '-'})")


def _cancel_active(ctx: typer.Context, kind: str, name: str, why: str) -> list[dict[str, Any]]:
    """Cancel, through the server, every run of ``kind`` ``name`` that has not ended;
    one that ended meanwhile (refused) is reported with ``refused`` and the others go on."""
    from jobdeck.cli.follow import server_client
    from jobdeck.cli.run_cmds import try_cancel

    with store(ctx) as opened:
        driven: RunKind = "schedule" if kind == "schedule" else "command"
        active = [run.id for run in opened.runs.active_runs(job=name, kind=driven)]
    if not active:
        return []
    with server_client(ctx) as client:
        return [try_cancel(client, run_id, why) for run_id in active]


def resume(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A suspended schedule, worker, command or monitor.")],
    kind: KindOption = None,
    as_json: JsonFlag = False,
    target: TargetOption = "local",
    catch_up: Annotated[
        bool,
        typer.Option(
            "--catch-up",
            help="Also run the slots the suspension held, by the schedule's catchup policy "
            "(without it, none of them ever runs).",
        ),
    ] = False,
) -> None:
    """End a suspension."""
    from jobdeck.catalog.plan import suspension_json
    from jobdeck.cli import aws_state

    if aws_state.check_target(target):
        if catch_up:
            fail("--catch-up is for the local engine; AWS has no slots to catch up", 2)
        held = aws_state.resume(load(ctx), name, _kind(kind))
        if as_json:
            print_json(held.json())
            return
        typer.echo(f"resumed {held.kind} {held.name} in AWS (was suspended: {held.reason})")
        return
    with control(ctx) as ctl:
        done = ctl.resume(name, kind=_kind(kind), catch_up=catch_up)
    if as_json:
        print_json(suspension_json(done))
        return
    typer.echo(f"resumed {done.kind} {done.name} (was suspended: {done.reason})")
    if done.catch_up:
        typer.echo(
            "the engine runs the slots it held, by the schedule's catchup policy "
            "(`jobdeck runs NAME` shows them, trigger catchup)"
        )


def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """What the applied revision runs, and how it is doing: each schedule's last run and
    next fire, workers' replicas, queues' depth, pools' memory and running runs."""
    from jobdeck.status import collect_status

    with store(ctx) as opened:
        now = datetime.now(UTC)
        with opened.reading() as tx:
            depth = tx.queues.queue_counts(int(now.timestamp() * 1000))
            live = tx.workers.worker_overview()
        revision = opened.revisions.latest_revision()
        activity = _activity(ctx, opened, revision)
        report = collect_status(
            revision, opened.suspensions.suspensions(now), now, depth, live, activity=activity
        )
    if as_json:
        print_json(report)
        return
    if report["revision"] is None:
        typer.echo("Nothing applied yet: run `jobdeck plan`, then `jobdeck apply`.")
        return
    rev = report["revision"]
    typer.echo(
        f"Revision {rev['number']}, applied {when(rev['applied_at'])} by {rev['applied_by']}"
    )
    for title, headers, rows in _sections(report):
        if rows:
            typer.echo(f"\n{title}")
            print_table(headers, rows)


def _activity(ctx: typer.Context, opened: Store, revision: Revision | None) -> Activity:
    """The newest run of each schedule, the running runs of each pool, and each pool's
    memory in use as its cgroup counts it (unknown without cgroups)."""
    from jobdeck.execute import cgroups
    from jobdeck.instance import instance_name
    from jobdeck.status import Activity

    if revision is None:
        return Activity()
    schedules = list(revision.catalog.get("schedules") or {})
    schedules += list(revision.catalog.get("monitors") or {})
    pools = list(revision.catalog.get("pools") or {})
    running: dict[str, int] = {}
    for run in opened.runs.active_runs():
        if run.status == "running":
            running[run.pool or "default"] = running.get(run.pool or "default", 0) + 1
    used: dict[str, int | None] = dict.fromkeys(pools)
    hierarchy, _ = cgroups.detect()
    if hierarchy is not None:
        config = settings(ctx)
        instance = instance_name(config.state_dir.resolve(), config.store_url)
        for pool in pools:
            group = hierarchy.memory / "jobdeck" / instance / pool
            used[pool] = cgroups.memory_usage(hierarchy.version, group)
    return Activity(opened.runs.last_runs(schedules), running, used, opened.runs.concurrency_keys())


Section = tuple[str, tuple[str, ...], list[tuple[Any, ...]]]


def _sections(report: dict[str, Any]) -> list[Section]:
    return [
        (
            "Schedules",
            ("NAME", "TRIGGER", "ZONE", "LAST RUN", "NEXT FIRE", "STATE"),
            [
                (
                    s["name"],
                    s["trigger"],
                    s["timezone"] or "UTC",
                    _last_run(s["last_run"]),
                    _next_fire(s),
                    _state(s),
                )
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
            "Monitors",
            ("NAME", "TRIGGER", "ZONE", "GRACE", "LAST RUN", "NEXT SLOT"),
            [
                (
                    m["name"],
                    m["trigger"],
                    m["timezone"] or "UTC",
                    m["grace"],
                    _last_run(m["last_run"]),
                    m["next_slot_local"].replace("T", " "),
                )
                for m in report.get("monitors", [])
            ],
        ),
        (
            "Commands",
            ("NAME", "POOL", "STATE"),
            [(c["name"], c["pool"] or "default", _state(c)) for c in report["commands"]],
        ),
        (
            "Queues",
            ("NAME", "VISIBLE", "IN FLIGHT", "DEAD LETTERS", "VISIBILITY", "MAX RECEIVES"),
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
            ("NAME", "MEMORY USED", "RUNNING", "CONCURRENCY", "CPUS", "PRIORITY", "WARM"),
            [
                (
                    p["name"],
                    _memory(p),
                    p["running"],
                    p["max_concurrency"],
                    p["cpus"],
                    p["priority"],
                    p["warm"],
                )
                for p in report["pools"]
            ],
        ),
        (
            "Concurrency keys",
            ("KEY", "LIMIT", "HOLDERS", "WAITERS", "ITEMS"),
            [
                (
                    k["key"],
                    k["limit"],
                    _key_runs(k["holders"]),
                    _key_runs(k["waiters"]),
                    ", ".join(f"{i['kind']} {i['name']}" for i in k["items"]) or "-",
                )
                for k in report["concurrency_keys"]
            ],
        ),
    ]


def _key_runs(runs: list[dict[str, Any]]) -> str:
    """Runs holding or waiting for a key: ``#12 nightly, #14 vacuum``."""
    return ", ".join(f"#{r['run_id']} {r['job']}" for r in runs) or "-"


def _last_run(last: dict[str, Any] | None) -> str:
    """``succeeded 2026-12-07 08:00:03Z (run 41)``."""
    if not last:
        return "never"
    return f"{last['status']} {when(last['at'])} (run {last['id']})"


def _next_fire(schedule: dict[str, Any]) -> str | None:
    suspension = schedule["suspension"]
    if suspension:
        return "suspended" + (f" until {when(suspension['until'])}" if suspension["until"] else "")
    if not schedule["enabled"]:
        return "disabled"
    local = schedule["next_fire_local"]
    return local.replace("T", " ") if local else None


def _memory(pool: dict[str, Any]) -> str:
    """``12MiB / 2GiB``; the use is unknown without cgroups."""
    from jobdeck.units import format_size

    limit = pool["memory_limit"]
    shown_limit = format_size(limit) if limit else "no limit"
    used = pool["memory_used"]
    return f"{_human_size(used) if used is not None else '-'} / {shown_limit}"


def _human_size(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f}{unit}".replace(".0", "")
    return f"{size}B"


def audit(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonFlag = False,
    target: TargetOption = "local",
) -> None:
    """Who invoked, suspended, resumed and applied what, from where, and the outcome."""
    from jobdeck.api.views import audit_json
    from jobdeck.cli import aws_state

    if aws_state.check_target(target):
        aws_state.show_audit(load(ctx), limit, as_json)
        return
    with store(ctx) as opened:
        entries = opened.audit.audit(limit)
    if as_json:
        print_json([audit_json(e) for e in entries])
        return
    rows = [
        (when(e.at), e.actor, e.via, e.action, e.target, e.outcome, _detail(e.detail))
        for e in entries
    ]
    print_table(("AT", "WHO", "VIA", "ACTION", "TARGET", "OUTCOME", "DETAIL"), rows)


def notices(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this schedule or command.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Every notice decided, sent or held back by a notify_policy, and why."""
    from jobdeck.api.views import notice_json

    with store(ctx) as opened:
        found = opened.notices.notices(job=name, limit=limit)
    if as_json:
        print_json([notice_json(n) for n in found])
        return
    rows = [
        (
            when(n.at),
            n.job,
            n.event,
            notice_state(n),
            "-" if n.run_id is None else str(n.run_id),
            n.why,
        )
        for n in found
    ]
    print_table(("AT", "JOB", "EVENT", "NOTICE", "RUN", "WHY"), rows)


def _until(text: str, now: datetime) -> datetime:
    from jobdeck.units import parse_until

    try:
        return parse_until(text, now)
    except ValueError:
        fail(f"--until {text!r}: give a duration such as 2h or an ISO time", 2)


def _kind(kind: str | None) -> str | None:
    if kind is not None and kind not in ("schedule", "worker", "command", "monitor"):
        fail(f"--kind {kind!r}: use schedule, worker, command or monitor", 2)
    return kind


def _state(item: dict[str, Any]) -> str:
    suspension = item.get("suspension")
    if suspension:
        until = f" until {when(suspension['until'])}" if suspension["until"] else ""
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
        f"run {last['run']} {last['status']} ({how}) at {when(last['at'])}; "
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
    """``params.title="Hi there" run_id=12``: nested values flattened, text quoted when it
    has spaces, lists and the rest as JSON; never a Python repr."""
    return " ".join(f"{key}={value}" for key, value in _flat(detail, ""))


def _flat(value: Any, prefix: str) -> list[tuple[str, str]]:
    import json

    if isinstance(value, dict):
        found: list[tuple[str, str]] = []
        for key, item in value.items():
            if item is not None:
                found.extend(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return found
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in '"=' for c in value)
        return [(prefix, value if plain else json.dumps(value, ensure_ascii=False))]
    return [(prefix, json.dumps(value, ensure_ascii=False))]


def nodes(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The engines of the store's cluster: role, heartbeat, running runs, replicas."""
    from jobdeck.cluster.view import read_nodes

    with store(ctx) as opened:
        now = datetime.now(UTC)
        with opened.reading() as tx:
            rows = read_nodes(tx.nodes, tx.runs, now)
    if as_json:
        print_json({"nodes": rows})
        return
    if not rows:
        typer.echo("no node has registered (no `jobdeck serve` ran on this store)")
        return
    print_table(
        ("ID", "HOST", "PID", "ROLE", "HEARTBEAT", "RUNNING", "REPLICAS", "VERSION"),
        [
            (
                r["id"],
                r["host"],
                r["pid"],
                r["role"],
                f"{r['heartbeat_age_s']:g}s ago",
                r["running_runs"],
                r["replicas"],
                r["version"],
            )
            for r in rows
        ],
    )
