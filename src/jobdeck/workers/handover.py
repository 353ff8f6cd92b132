"""A drain's handover of this node's worker processes to the new leader: new before old.

Singletons stop first (and their leases are given back), so that the new leader starts
one only once the old is gone. The other replicas stay past the node's fence (the run
shims read the handover in ``fence.json``) while the new leader starts its own: each
step stops as many of them as the new leader runs beyond the desired count (``running``
in the store), and all of them at the handover's end (the drain's deadline), which the
shims enforce too when the engine is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from jobdeck.workers.supervisor import Supervisor

log = logging.getLogger(__name__)


class WorkerHandover:
    """:class:`jobdeck.cluster.drain.Handover` over the supervisor: ``keep`` moves the
    fence of the runs given (until the time given; None: the handover ended), ``leader``
    reads the node that leads now, ``stop_all`` stops every worker process."""

    def __init__(
        self,
        supervisor: Supervisor,
        *,
        keep: Callable[[tuple[int, ...], datetime | None], None],
        leader: Callable[[datetime], str | None],
        stop_all: Callable[[], Awaitable[None]],
        within: Callable[[], float],
    ) -> None:
        self.supervisor = supervisor
        self.keep = keep
        self.leader = leader
        self._stop_all = stop_all
        self.within = within
        self.singletons_by: datetime | None = None
        self.runs: tuple[int, ...] = ()  # those handed over

    def stop_singletons(self, now: datetime) -> None:
        self.supervisor.stop_singletons(now)
        self.singletons_by = now + timedelta(seconds=self.within())

    def singletons_gone(self) -> bool:
        if not self.supervisor.singletons_left():
            return True
        if self.singletons_by is not None and self.supervisor.clock.now() > self.singletons_by:
            log.warning("draining: some singleton worker processes did not stop in time")
            return True
        return False

    async def stop_all(self) -> None:
        await self._stop_all()

    def begin(self, until: datetime) -> bool:
        self.runs = self.supervisor.handed_over()
        if not self.runs:
            return False
        self.keep(self.runs, until)
        return True

    def step(self, now: datetime, *, final: bool) -> bool:
        leader = None if final else self.leader(now)
        done = self.supervisor.hand_over(self.runs, now, leader, final=final)
        if done:
            self.runs = ()
            self.keep((), None)
        return done
