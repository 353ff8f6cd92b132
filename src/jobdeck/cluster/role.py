"""The loop of this engine's part in the cluster: a heartbeat every third of the lease,
the fence file of its worker processes kept at its deadline, and the application told
when it becomes the leader or stops being one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from jobdeck.clock import Clock
from jobdeck.cluster.leadership import Change, Leadership
from jobdeck.execute.spec import write_fence

log = logging.getLogger(__name__)

FENCE_FILE = "fence.json"


class ClusterRole:
    """Runs :class:`Leadership` for the engine; ``on_acquired`` and ``on_lost`` are
    called in the engine's loop."""

    def __init__(
        self,
        leadership: Leadership,
        clock: Clock,
        state_dir: Path,
        *,
        on_acquired: Callable[[], None],
        on_lost: Callable[[], None],
        on_leading: Callable[[datetime], None] | None = None,
        on_beat: Callable[[datetime], Awaitable[None]] | None = None,
    ) -> None:
        self.leadership = leadership
        self.clock = clock
        self.fence_file = state_dir / FENCE_FILE
        self.on_acquired = on_acquired
        self.on_lost = on_lost
        self.on_leading = on_leading  # after each beat as the leader (lost nodes' runs)
        self.on_beat = on_beat  # after every beat (a drain's steps)
        # A drain's handover: these worker runs outlive the fence until then.
        self.handover: tuple[datetime, tuple[int, ...]] | None = None

    def start(self) -> Change:
        """Registers the node and takes the lease if it is free (or this node's own,
        from before a restart), before the engine adopts and schedules anything."""
        now = self.clock.now()
        self.leadership.register(now)
        change = self.leadership.step(now, own_restart=True)
        self._write_fence()
        return change

    def leads(self, now: datetime) -> bool:
        return self.leadership.leads(now)

    async def run(self) -> None:
        every = self.leadership.timing.renew_every.total_seconds()
        while True:
            await asyncio.sleep(every)
            now = self.clock.now()
            change = await asyncio.to_thread(self.leadership.step, now)
            self._write_fence()
            if change == "acquired":
                self.on_acquired()
            elif change == "lost":
                self.on_lost()
            if change in ("acquired", "kept") and self.on_leading is not None:
                self.on_leading(self.clock.now())
            if self.on_beat is not None:
                await self.on_beat(self.clock.now())

    def resign(self) -> None:
        """Hands leadership over (a stop or a drain): the fence first, so that this
        node's worker processes stop before another node may start theirs (all but
        those of a drain's handover, until its end)."""
        self._write_until(0.0)
        self.leadership.resign(self.clock.now())

    def hand_over(self, runs: tuple[int, ...], until: datetime | None) -> None:
        """Keeps the worker runs ``runs`` alive past the fence until ``until`` (a
        drain's handover: the new leader's replicas start before these stop), a lease
        at a time, renewed at each beat; None ends the handover (the runs left stop at
        the fence)."""
        self.handover = (until, runs) if until is not None and runs else None
        self._write_fence()

    def _write_fence(self) -> None:
        deadline = self.leadership.fence_deadline()
        self._write_until(deadline.timestamp() if deadline is not None else 0.0)

    def _write_until(self, until: float) -> None:
        if self.handover is None:
            write_fence(self.fence_file, until)
            return
        # Rolled on at every beat: the engine's crash ends a handover within a lease.
        ends, runs = self.handover
        ends = min(ends, self.clock.now() + self.leadership.timing.lease)
        kept = [str(r) for r in runs]
        write_fence(self.fence_file, until, handover_until=ends.timestamp(), handover=kept)
