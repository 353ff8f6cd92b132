"""The records of a cluster of engines in the store: its nodes and the leader's lease
(plain frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Node:
    """One ``jobdeck serve`` of the installation, as it registered and last beat."""

    id: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    # Asked to take no new runs and to hand its work over (``jobdeck drain``).
    draining: bool = False
    # When a drain cancels the runs still running on the node (None: it waits for them).
    drain_deadline: datetime | None = None
    # The node said its drain is done: nothing of it runs any more, safe to stop.
    drained: bool = False
    # How long after its last heartbeat the cluster takes it for lost (its --lost-after).
    lost_after: timedelta = timedelta(seconds=20)
    # Where its HTTP API answers (``serve --advertise``): other nodes fetch the logs of
    # the runs it executed from there. None: not advertised.
    url: str | None = None


@dataclass(frozen=True)
class LeaderLease:
    """Who leads the cluster, until when, and the fencing token of that tenure: it grows
    at every acquisition, so that a write carrying an older token is refused."""

    holder: str
    token: int
    acquired_at: datetime
    expires_at: datetime

    def held_by(self, node: str, now: datetime) -> bool:
        return self.holder == node and self.expires_at > now
