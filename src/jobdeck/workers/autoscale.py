"""The autoscale decision: how many replicas a worker should run for its queue's backlog.

Pure: the policy, the visible backlog, what was decided before and ``now`` in, a
decision out. Out promptly (the moment the backlog asks for more), in slowly: only once
the backlog has asked for fewer for a whole cooldown, so a queue that empties between
bursts does not make replicas come and go.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from jobdeck.catalog.model import Autoscale

Action = Literal["start", "out", "in", "hold", "cooldown"]


@dataclass(frozen=True)
class ScaleState:
    """What the previous decision left: the replicas it wants, and since when the
    backlog has asked for fewer (None while it does not)."""

    desired: int
    lower_since: datetime | None = None


@dataclass(frozen=True)
class ScaleDecision:
    desired: int
    target: int  # what the backlog alone asks for, within [min, max]
    action: Action
    visible: int
    reason: str
    state: ScaleState

    @property
    def changed(self) -> bool:
        return self.action in ("start", "out", "in")

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "at": now.isoformat(),
            "action": self.action,
            "desired": self.desired,
            "target": self.target,
            "visible": self.visible,
            "reason": self.reason,
        }


def target_replicas(policy: Autoscale, visible: int) -> int:
    """ceil(visible / backlog_per_replica), within [min, max]."""
    wanted = math.ceil(max(0, visible) / policy.backlog_per_replica)
    return max(policy.min, min(policy.max, wanted))


def decide_replicas(
    policy: Autoscale,
    visible: int,
    previous: ScaleState | None,
    now: datetime,
    *,
    cooldown: timedelta | None = None,
) -> ScaleDecision:
    """The replicas to run now. ``cooldown`` overrides the policy's own (for tests)."""
    wait = policy.cooldown if cooldown is None else cooldown
    target = target_replicas(policy, visible)
    per = policy.backlog_per_replica

    def decided(
        desired: int, action: Action, reason: str, since: datetime | None = None
    ) -> ScaleDecision:
        return ScaleDecision(desired, target, action, visible, reason, ScaleState(desired, since))

    if previous is None:
        return decided(target, "start", f"{visible} visible, {per} per replica")
    current = previous.desired
    # A policy changed by an apply moves the bounds at once, in both directions.
    if current > policy.max:
        return decided(policy.max, "in", f"above the new max {policy.max}")
    if current < policy.min:
        return decided(policy.min, "out", f"below the new min {policy.min}")
    if target > current:
        return decided(target, "out", f"{visible} visible, {per} per replica")
    if target == current:
        return decided(current, "hold", f"{visible} visible, {per} per replica")
    since = previous.lower_since or now
    if now - since >= wait:
        return decided(target, "in", f"{visible} visible for {_seconds(now - since)}")
    left = wait - (now - since)
    return decided(
        current, "cooldown", f"{visible} visible; in to {target} after {_seconds(left)}", since
    )


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():g}s"
