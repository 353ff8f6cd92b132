"""The scheduler's way to the run driver in a cluster (see docs/ha.md)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from jobdeck.store.errors import Fenced
from jobdeck.store.records import Run, Trigger
from jobdeck.workflow.decisions import CatchupDecision, MissCause
from jobdeck.workflow.driver import RunDriver

log = logging.getLogger(__name__)

# How long a timed fire waits for its tenure's catch-up before it goes ahead anyway (a
# bound for a wedged engine: the catch-up takes milliseconds).
CATCH_UP_WAIT = 10.0


class LeaderFiring:
    """The scheduler's way to the run driver in a cluster: only the leader fires and
    catches up; a standby lets its timer's slots pass (the leader claims them, and a
    new leader catches up those that fell due while none led).

    A node that becomes the leader fires no timed slot before the catch-up of its tenure
    (``tenure``: its fencing token) is decided (:meth:`caught_up`): the timer's first
    fire would otherwise claim a slot after the missed ones, which the catch-up then
    counts from (leaving them without a record), or overlap the newest missed slot's
    run (skipping it). Such a fire waits; it runs after the catch-up, by its own rules."""

    def __init__(
        self,
        driver: RunDriver,
        leads: Callable[[], bool],
        tenure: Callable[[], int | None] | None = None,
    ) -> None:
        self.driver = driver
        self.leads = leads
        self.tenure = tenure if tenure is not None else lambda: None
        self._caught_up: int | None = None
        self._changed = threading.Condition()
        self.held = 0  # timed fires waiting for the catch-up now

    def caught_up(self, tenure: int | None) -> None:
        """The catch-up of the tenure ``tenure`` is decided: its timed fires go ahead."""
        with self._changed:
            self._caught_up = tenure
            self._changed.notify_all()

    def _ready(self) -> bool:
        """Waits until this node leads with its tenure's catch-up done; False when it
        does not lead (any more)."""
        give_up = time.monotonic() + CATCH_UP_WAIT
        with self._changed:
            while self.leads():
                tenure = self.tenure()
                if tenure == self._caught_up:
                    return True
                left = give_up - time.monotonic()
                if left <= 0:
                    log.warning("no catch-up for tenure %s yet: firing anyway", tenure)
                    return True
                self.held += 1
                try:
                    self._changed.wait(min(left, 0.5))  # leadership may end meanwhile
                finally:
                    self.held -= 1
        return False

    def fire(
        self,
        name: str,
        nominal: datetime,
        trigger: Trigger = "schedule",
        decided_at: datetime | None = None,
    ) -> Run | None:
        if not self._ready():
            return None
        try:
            return self.driver.fire(name, nominal, trigger, decided_at)
        except Fenced as exc:
            log.warning("schedule %s: slot %s left to the leader: %s", name, nominal, exc)
            return None

    def catch_up(
        self,
        name: str,
        decision: CatchupDecision,
        *,
        trigger: Trigger,
        cause: MissCause,
        held: bool = False,
    ) -> None:
        if not self.leads():
            return
        try:
            self.driver.catch_up(name, decision, trigger=trigger, cause=cause, held=held)
        except Fenced as exc:
            log.warning("schedule %s: catch-up left to the leader: %s", name, exc)
