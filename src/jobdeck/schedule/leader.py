"""The scheduler's way to the run driver in a cluster (see docs/ha.md)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from jobdeck.store.errors import Fenced
from jobdeck.store.records import Run, Trigger
from jobdeck.workflow.decisions import CatchupDecision, MissCause
from jobdeck.workflow.driver import RunDriver

log = logging.getLogger(__name__)


class LeaderFiring:
    """The scheduler's way to the run driver in a cluster: only the leader fires and
    catches up; a standby lets its timer's slots pass (the leader claims them, and a
    new leader catches up those that fell due while none led)."""

    def __init__(self, driver: RunDriver, leads: Callable[[], bool]) -> None:
        self.driver = driver
        self.leads = leads

    def fire(
        self,
        name: str,
        nominal: datetime,
        trigger: Trigger = "schedule",
        decided_at: datetime | None = None,
    ) -> Run | None:
        if not self.leads():
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
