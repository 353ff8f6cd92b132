"""Commands about the catalog file and its revisions: validate, schema, plan, apply,
revisions, next, import crontab."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jobdeck.cli.context import (
    EXIT_INVALID,
    EXIT_REFUSED,
    JsonFlag,
    control,
    emit,
    fail,
    interactive,
    iso,
    load,
    print_json,
    print_table,
    settings,
    store,
)
from jobdeck.cli.output import print_plan

TargetOption = Annotated[
    str, typer.Option("--target", help="local (this engine's store) or aws (the deployed stack).")
]

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from jobdeck.store.records import Revision

__all__ = ["JsonFlag", "register"]


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(schema)
    app.command()(plan)
    app.command()(apply)
    app.command()(revisions)
    app.command("next")(next_)
    importer = typer.Typer(help="Turn legacy schedules into catalog YAML.", no_args_is_help=True)
    importer.command("crontab")(import_crontab)
    app.add_typer(importer, name="import")


def validate(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Check the catalog file and count what it declares."""
    loaded = load(ctx)
    counts = loaded.catalog.counts()
    emit(
        as_json,
        {"valid": True, "catalog": str(loaded.path), "digest": loaded.digest, "counts": counts},
        lambda: typer.echo(
            f"ok: {counts['schedules']} schedules, {counts['workers']} workers, "
            f"{counts['commands']} commands, {counts['queues']} queues, {counts['pools']} pools"
            + (f", {counts['monitors']} monitors" if counts["monitors"] else "")
        ),
    )


def schema() -> None:
    """Print the catalog's JSON Schema (for editors)."""
    from jobdeck.catalog.model import Catalog

    document = Catalog.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "jobdeck catalog (jobdeck.yaml)"
    print_json(document)


def plan(ctx: typer.Context, as_json: JsonFlag = False, target: TargetOption = "local") -> None:
    """Show what `apply` would change, and every active suspension."""
    from jobdeck.catalog.plan import render_plan

    loaded = load(ctx)
    from jobdeck.cli import aws_state

    if aws_state.check_target(target):
        aws_state.show_plan(loaded, as_json)
        return
    with control(ctx) as ctl:
        result = ctl.plan(loaded)
        applied = ctl.store.revisions.latest_revision()
    if as_json:
        print_json(result.to_json())
    else:
        print_plan(render_plan(result, against=_against(applied)))


def apply(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Apply the catalog as a new revision, atomically."""
    from jobdeck.api.views import revision_json
    from jobdeck.catalog.plan import render_plan
    from jobdeck.control import git_describe

    loaded = load(ctx)
    from jobdeck.catalog.env_refs import local_refusals

    refused = local_refusals(loaded)
    for diagnostic in refused:
        typer.echo(str(diagnostic), err=True)
    if refused:
        fail(f"{len(refused)} env value(s) the local engine cannot read; nothing was applied", 2)
    with control(ctx) as ctl:
        shown = ctl.plan(loaded)
        applied = ctl.store.revisions.latest_revision()
        if not as_json:
            print_plan(render_plan(shown, against=_against(applied)))
        if shown.empty and applied is not None:
            if as_json:
                print_json({"applied": None, "plan": shown.to_json()})
            return
        if not yes:
            if as_json or not interactive():
                where = "with --json" if as_json else "not on a terminal"
                fail(f"not applying: {where}; pass --yes to apply", EXIT_REFUSED)
            answer = typer.prompt(
                "\nApply these changes? Only 'yes' applies", default="", show_default=False
            )
            if answer.strip() != "yes":
                fail("apply cancelled; nothing was changed", EXIT_REFUSED)
        revision = ctl.apply(loaded, git=git_describe(loaded.path), expected=shown)
    if as_json:
        print_json(
            {
                "applied": None if revision is None else revision_json(revision),
                "plan": shown.to_json(),
            }
        )
    elif revision is not None:
        typer.echo(f"\nApplied revision {revision.number} ({revision.catalog_sha256[:12]}).")


def revisions(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many to show.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Applied revisions, newest first."""
    from jobdeck.api.views import revision_json

    with store(ctx) as opened:
        found = opened.revisions.revisions(limit)
    if as_json:
        print_json([revision_json(r) for r in found])
        return
    rows = [
        (r.number, iso(r.applied_at), r.applied_by, r.catalog_sha256[:12], r.git_describe, r.source)
        for r in found
    ]
    print_table(("REVISION", "APPLIED", "BY", "SHA256", "GIT", "SOURCE"), rows)


def next_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A schedule of the catalog file.")],
    count: Annotated[int, typer.Option(min=1, max=1000)] = 5,
    from_: Annotated[
        str | None, typer.Option("--from", help="Start instant, ISO 8601 (default: now).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The next fire times of a schedule, in its zone and in UTC."""
    from zoneinfo import ZoneInfo

    from jobdeck.cadence import jitter_delay, next_fires
    from jobdeck.catalog.model import cadence_for
    from jobdeck.catalog.names import unknown_schedule
    from jobdeck.units import format_duration

    catalog = load(ctx).catalog
    spec = catalog.schedules.get(name)
    if spec is None:
        fail(unknown_schedule(name, catalog.model_dump(mode="json"), "the catalog"))
    zone = spec.timezone or "UTC"
    tz = ZoneInfo(zone)
    start = _instant(from_, tz) if from_ else datetime.now(UTC)
    fires = next_fires(cadence_for(spec), start, count)
    jitter = spec.jitter or None
    # With jitter each slot starts after its own delay (the same on every engine).
    delays = [jitter_delay(name, f, jitter) if jitter else None for f in fires]
    if as_json:
        listed: list[dict[str, Any]] = []
        for fire, delay in zip(fires, delays, strict=True):
            item: dict[str, Any] = {"local": fire.astimezone(tz).isoformat(), "utc": iso(fire)}
            if delay is not None:
                item["jitter_ms"] = round(delay.total_seconds() * 1000)
                item["starts_utc"] = iso(fire + delay)
            listed.append(item)
        shown: dict[str, Any] = {"schedule": name, "timezone": zone, "fires": listed}
        if jitter:
            shown["jitter"] = format_duration(jitter)
        print_json(shown)
        return
    if spec.cron:
        what = f"cron {spec.cron!r}"
    else:
        assert spec.rate is not None
        what = f"every {format_duration(spec.rate)}"
    if jitter:
        what += f", jitter {format_duration(jitter)}"
    typer.echo(f"{name}: {what} in {zone}")
    head = (zone.upper() if zone == "UTC" else zone, "UTC")
    local = [f.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z (%z)") for f in fires]
    if not jitter:
        print_table(head, [(shown_at, iso(f)) for shown_at, f in zip(local, fires, strict=True)])
        return
    rows = [
        (shown_at, iso(f), f"+{format_duration(d)}" if d else "+0s", iso(f + d))
        for shown_at, f, d in zip(local, fires, [d or timedelta(0) for d in delays], strict=True)
    ]
    print_table((*head, "JITTER", "STARTS (UTC)"), rows)


def import_crontab(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A crontab file (`crontab -l > FILE`).")],
    system: Annotated[
        bool, typer.Option("--system", help="The file has a user column (/etc/crontab).")
    ] = False,
    project: Annotated[str, typer.Option(help="The catalog's project name.")] = "imported",
    monitor: Annotated[
        bool,
        typer.Option(
            "--monitor",
            help="Watch the jobs where they run: print monitors instead of schedules, and "
            "write the crontab rewritten to ping them (needs JOBDECK_PING_KEY).",
        ),
    ] = False,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--url", help="With --monitor: the server's address as the crontab's host reaches it."
        ),
    ] = None,
    crontab_out: Annotated[
        Path | None,
        typer.Option(
            "--crontab-out",
            help="With --monitor: where to write the crontab (default: FILE.monitored "
            "beside the catalog).",
        ),
    ] = None,
) -> None:
    """Turn a legacy crontab into catalog YAML on stdout; what did not convert goes to stderr."""
    from jobdeck.catalog.crontab import import_crontab as convert

    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}", EXIT_INVALID)
    if monitor:
        _import_monitored(ctx, file, text, system, project, base_url, crontab_out)
        return
    result = convert(text, source=str(file), system=system, project=project)
    typer.echo(result.yaml, nl=False)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)


def _import_monitored(
    ctx: typer.Context,
    file: Path,
    text: str,
    system: bool,
    project: str,
    base_url: str | None,
    crontab_out: Path | None,
) -> None:
    import os

    from jobdeck.api.ping_tokens import KEY_HINT, ping_keys, token_for
    from jobdeck.catalog.crontab_monitor import monitor_crontab

    keys = ping_keys(os.environ)
    if not keys:
        fail(f"--monitor writes each job's ping URL, which needs the ping key: {KEY_HINT}")
    base = (base_url or settings(ctx).server).rstrip("/")
    result = monitor_crontab(
        text,
        url_for=lambda name: f"{base}/ping/{name}/{token_for(keys[0], name)}",
        source=str(file),
        system=system,
        project=project,
    )
    target = crontab_out or settings(ctx).catalog.parent / f"{file.name}.monitored"
    try:
        # The URLs hold the monitors' tokens: the file is its owner's alone.
        handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(result.crontab)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    typer.echo(result.yaml, nl=False)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(
        f"wrote {target}: {len(result.monitors)} job(s) ping their monitors; apply the "
        f"monitors, then install it with `crontab {target}`",
        err=True,
    )


def _against(applied: Revision | None) -> str:
    if applied is None:
        return "nothing applied yet"
    return f"revision {applied.number} (applied {iso(applied.applied_at)} by {applied.applied_by})"


def _instant(text: str, zone: ZoneInfo) -> datetime:
    """An ISO 8601 instant; without an offset it is read in the schedule's zone."""
    from jobdeck.units import parse_instant

    try:
        return parse_instant(text, zone)
    except ValueError:
        fail(f"--from {text!r} is not an ISO 8601 time such as 2026-03-08T01:00:00Z", 2)
