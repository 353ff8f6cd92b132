"""``--target aws`` of suspend, resume, audit and plan: the deployed stack's state,
through the AWS API with the user's own credentials (boto3's usual chain; the
``AWS_ENDPOINT_URL`` variables point it elsewhere, as for any AWS SDK)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import typer

from jobdeck.catalog.load import LoadedCatalog
from jobdeck.cli.context import EXIT_REFUSED, fail, print_json, print_table
from jobdeck.control import current_actor
from jobdeck.targets.aws.cloud_state import CloudState, CloudSuspension, iso, table_name
from jobdeck.units import parse_until

TARGETS = ("local", "aws")


def check_target(target: str) -> bool:
    """True for ``aws``; exits 2 for a target that does not exist."""
    if target not in TARGETS:
        fail(f"--target {target!r}: use local or aws", 2)
    return target == "aws"


@contextmanager
def aws_errors() -> Iterator[None]:
    """What boto3 raises, as one line that says what is missing."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
    )
    from botocore.parsers import ResponseParserError

    try:
        yield
    except NoCredentialsError:
        fail(
            "no AWS credentials: set AWS_PROFILE, or run `aws configure` or "
            "`aws sso login`, then try again"
        )
    except NoRegionError:
        fail("no AWS region: set AWS_REGION (or a region in your AWS profile)")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ResourceNotFoundException":
            fail(f"{error.get('Message')}: is the stack deployed (jobdeck deploy aws deploy)?")
        fail(f"AWS refused: {error.get('Code')}: {error.get('Message')}")
    except (BotoCoreError, ResponseParserError) as exc:
        fail(f"cannot reach AWS: {exc}")


def client(service: str) -> Any:
    import boto3

    make: Any = boto3.client  # typed per service name; the name here is data
    return make(service)


def cloud_state(loaded: LoadedCatalog) -> CloudState:
    return CloudState(client("dynamodb"), table_name(loaded.catalog.project))


def _resolve(loaded: LoadedCatalog, name: str, kind: str | None) -> tuple[str, Any]:
    found = [
        (k, spec)
        for k, spec in loaded.catalog.find(name)
        if k in ("schedule", "worker", "command") and (kind is None or k == kind)
    ]
    if not found:
        fail(f"no schedule, worker or command named {name!r} in the catalog", EXIT_REFUSED)
    if len(found) > 1:
        kinds = " and ".join(k for k, _ in found)
        fail(f"{name!r} names a {kinds}; say which with --kind", EXIT_REFUSED)
    return found[0]


def suspend(
    loaded: LoadedCatalog, name: str, reason: str, until: str | None, kind: str | None
) -> CloudSuspension:
    from jobdeck.targets.aws.services import NoService, set_worker

    found_kind, spec = _resolve(loaded, name, kind)
    now = datetime.now(UTC)
    try:
        expiry = parse_until(until, now) if until else None
    except ValueError:
        fail(f"--until {until!r}: give a duration such as 2h or an ISO time", 2)
    with aws_errors():
        state = cloud_state(loaded)
        identity = client("sts").get_caller_identity()["Arn"]
        held = CloudSuspension(
            kind=found_kind,
            name=name,
            reason=reason,
            created_by=current_actor(),
            created_at=now,
            until=expiry,
            restore=spec.desired_replicas if found_kind == "worker" else None,
        )
        # Recorded first: the keeper holds a worker at zero from then on, even if
        # stopping it here fails half way.
        state.suspend(held)
        if found_kind == "worker":
            try:
                set_worker(
                    client("ecs"),
                    client("application-autoscaling"),
                    loaded.catalog.project,
                    name,
                    None,
                )
            except NoService as exc:
                typer.echo(f"warning: {exc}; it stays suspended when it is deployed", err=True)
        state.record(
            now,
            actor=held.created_by,
            via="cli",
            action="suspend",
            target=f"{found_kind}/{name}",
            outcome="ok",
            detail={"reason": reason, "until": iso(expiry) if expiry else None, "iam": identity},
        )
    return held


def resume(loaded: LoadedCatalog, name: str, kind: str | None) -> CloudSuspension:
    from jobdeck.targets.aws.services import NoService, set_worker

    found_kind, spec = _resolve(loaded, name, kind)
    now = datetime.now(UTC)
    with aws_errors():
        state = cloud_state(loaded)
        held = state.resume(found_kind, name)
        if held is None:
            fail(f"{found_kind} {name} is not suspended in AWS", EXIT_REFUSED)
        if found_kind == "worker":
            try:
                set_worker(
                    client("ecs"),
                    client("application-autoscaling"),
                    loaded.catalog.project,
                    name,
                    spec.desired_replicas if spec.enabled else 0,
                )
            except NoService as exc:
                typer.echo(f"warning: {exc}", err=True)
        identity = client("sts").get_caller_identity()["Arn"]
        state.record(
            now,
            actor=current_actor(),
            via="cli",
            action="resume",
            target=f"{found_kind}/{name}",
            outcome="ok",
            detail={"was": held.reason, "iam": identity},
        )
    return held


def suspensions(loaded: LoadedCatalog) -> list[CloudSuspension]:
    with aws_errors():
        return cloud_state(loaded).suspensions(datetime.now(UTC))


def suspensions_text(held: list[CloudSuspension]) -> str:
    if not held:
        return "No active suspensions in AWS."
    lines = [
        "Active suspensions in AWS (no deploy clears them; `jobdeck resume NAME --target aws`):"
    ]
    for s in held:
        until = f" until {iso(s.until)}" if s.until else ""
        lines.append(f"  ! {s.kind} {s.name}: by {s.created_by}{until}: {s.reason}")
    return "\n".join(lines)


def show_audit(loaded: LoadedCatalog, limit: int, as_json: bool) -> None:
    with aws_errors():
        entries = cloud_state(loaded).audit(limit)
    if as_json:
        print_json(entries)
        return
    rows = [
        (
            e["at"],
            e["actor"],
            e["via"],
            e["action"],
            e["target"],
            e["outcome"],
            ", ".join(f"{k}={v}" for k, v in e["detail"].items()),
        )
        for e in entries
    ]
    print_table(("AT", "WHO", "VIA", "ACTION", "TARGET", "OUTCOME", "DETAIL"), rows)


def show_plan(loaded: LoadedCatalog, as_json: bool) -> None:
    held = suspensions(loaded)
    if as_json:
        print_json({"suspensions": [s.json() for s in held]})
        return
    typer.echo(suspensions_text(held))


def hold_suspended_workers(loaded: LoadedCatalog) -> int:
    """After a deploy: suspended workers back at zero tasks at once (the keeper would do
    it within a minute)."""
    from jobdeck.targets.aws.keeper import keep

    done = keep(
        cloud_state(loaded),
        client("ecs"),
        client("application-autoscaling"),
        loaded.catalog.project,
        datetime.now(UTC),
    )
    return done["held"]
