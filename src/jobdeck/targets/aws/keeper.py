"""The keeper on Lambda, every minute and after every change of the stack: it ends the
suspensions whose time is up (no local engine is involved) and holds the suspended
workers at zero tasks, also after a deploy set their services' desired count again.

Schedules and commands need nothing from it: the launcher and the bot compare a
suspension's ``until`` with the slot's or the click's time themselves.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

import boto3

from jobdeck.targets.aws.cloud_state import CloudState, CloudSuspension
from jobdeck.targets.aws.services import NoService, set_worker

LOG = logging.getLogger(__name__)


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    state = CloudState(boto3.client("dynamodb"), os.environ["JOBDECK_TABLE"])
    return keep(
        state,
        boto3.client("ecs"),
        boto3.client("application-autoscaling"),
        os.environ["JOBDECK_CLUSTER"],
        datetime.now(UTC),
    )


def keep(state: CloudState, ecs: Any, scaling: Any, cluster: str, now: datetime) -> dict[str, int]:
    held_workers = expired = 0
    for held in state.suspensions():
        if held.active(now):
            if held.kind == "worker":
                held_workers += _hold(ecs, scaling, cluster, held)
            continue
        if held.kind == "worker":
            try:
                set_worker(ecs, scaling, cluster, held.name, held.restore or 0)
            except NoService as exc:
                LOG.warning("%s", exc)
        if state.resume(held.kind, held.name) is not None:
            expired += 1
            state.record(
                now,
                actor="jobdeck",
                via="aws",
                action="resume",
                target=f"{held.kind}/{held.name}",
                outcome="expired",
                detail={"reason": held.reason, "suspended_by": held.created_by},
            )
    return {"held": held_workers, "expired": expired}


def _hold(ecs: Any, scaling: Any, cluster: str, held: CloudSuspension) -> int:
    """1 when the worker had tasks again (a deploy set its desired count) and was stopped."""
    try:
        before = set_worker(ecs, scaling, cluster, held.name, None)
    except NoService as exc:
        LOG.warning("%s", exc)
        return 0
    return 1 if before else 0
