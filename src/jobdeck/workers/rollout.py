"""What to start and what to stop so that a worker converges on its desired replicas.

Pure: the worker's replicas as the supervisor sees them, the desired count, whether it
is a singleton and whether its restart backoff has passed in; the processes to start and
the runs to stop out. A changed worker (its replicas run an outdated spec) is rolled one
replica at a time: a new one starts, and once it runs an old one stops. A singleton is
the exception: its old process stops first, and nothing starts while any process of it
is alive (stopping ones included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ReplicaState = Literal["starting", "running", "stopping"]
StopReason = Literal["changed", "scaled_in", "removed", "suspended", "disabled", "shutdown"]


@dataclass(frozen=True)
class ReplicaView:
    run_id: int
    current: bool  # runs the worker's current spec
    state: ReplicaState


@dataclass(frozen=True)
class Steps:
    start: int = 0
    stop: tuple[tuple[int, StopReason], ...] = ()


def converge(
    replicas: Sequence[ReplicaView],
    desired: int,
    *,
    singleton: bool,
    may_start: bool,
    zero_reason: StopReason = "scaled_in",
) -> Steps:
    """``zero_reason`` says why ``desired`` is 0 (removed, suspended, disabled or scaled
    in) and is the reason given to every stop it causes."""
    alive = [r for r in replicas if r.state != "stopping"]
    current = sorted((r for r in alive if r.current), key=lambda r: r.run_id)
    old = sorted((r for r in alive if not r.current), key=lambda r: r.run_id)
    if desired <= 0:
        return Steps(stop=tuple((r.run_id, zero_reason) for r in sorted(alive, key=_id)))
    if singleton:
        stops = [(r.run_id, "changed") for r in old]
        stops += [(r.run_id, "scaled_in") for r in current[1:]]
        start = 1 if may_start and not replicas else 0
        return Steps(start=start, stop=tuple(stops))  # type: ignore[arg-type]
    if old:
        starting = any(r.state == "starting" for r in current)
        old_stopping = any(r.state == "stopping" and not r.current for r in replicas)
        if starting or old_stopping:
            return Steps()  # one step at a time: wait for the new one to run, the old to go
        if len(current) + len(old) > desired:
            return Steps(stop=((old[0].run_id, "changed"),))
        if len(current) < desired and may_start:
            return Steps(start=1)
        return Steps()
    if len(current) < desired:
        return Steps(start=desired - len(current) if may_start else 0)
    extra = current[desired:]
    return Steps(stop=tuple((r.run_id, "scaled_in") for r in reversed(extra)))


def _id(replica: ReplicaView) -> int:
    return replica.run_id
