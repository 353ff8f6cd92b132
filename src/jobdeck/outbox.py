"""The engine's side of the notices outbox (see :mod:`jobdeck.workflow.outbox`): it
records how each send of a recorded notice went, and, on the engine that leads, sends
again the notices still ``due`` (those of an engine that died before their targets
accepted them, those that failed), backing off, until they are delivered or given up.

Everything here runs in the event loop's thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from jobdeck.clock import Clock
from jobdeck.store import DataStore, Run, Tx
from jobdeck.store.records import Notice
from jobdeck.workflow.outbox import (
    DELIVERED,
    GIVE_UP_AFTER,
    GIVEN_UP,
    after_failure,
    run_of,
    with_notice,
)

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 2.0  # seconds between two looks at the notices due

Done = Callable[[bool], None]
Send = Callable[[list[str], Run, str], None]


@dataclass(frozen=True)
class Sending:
    decided_at: datetime
    attempts: int  # tries before this one
    started: bool = False


class Outbox:
    """Notices in flight on this engine, their outcomes, and the sweep of those due."""

    def __init__(
        self, store: DataStore, clock: Clock, send: Send, leads: Callable[[], bool]
    ) -> None:
        self.store = store
        self.clock = clock
        self.send = send
        self.leads = leads
        self.fence: Callable[[Tx, datetime], None] | None = None
        self.in_flight: dict[int, Sending] = {}

    def sending(self, notice_id: int) -> Done | None:
        """The callback for a send of notice ``notice_id`` starting now; None if this
        engine is sending it already."""
        claimed = self.in_flight.get(notice_id)
        if claimed is not None and claimed.started:
            return None
        claimed = claimed or Sending(self.clock.now(), 0)
        self.in_flight[notice_id] = dataclasses.replace(claimed, started=True)
        return lambda ok: self.done(notice_id, ok)

    def done(self, notice_id: int, ok: bool) -> None:
        """Records the outcome of a send; the first outcome recorded stands."""
        sent = self.in_flight.pop(notice_id, None) or Sending(self.clock.now(), 0)
        now = self.clock.now()
        attempts = sent.attempts + 1
        try:
            with self.store.transaction() as tx:
                if ok:
                    tx.notices.set_delivery(
                        notice_id, DELIVERED, attempts=attempts, delivered_at=now
                    )
                    return
                delivery, next_try_at = after_failure(sent.decided_at, attempts, now)
                tx.notices.set_delivery(
                    notice_id, delivery, attempts=attempts, next_try_at=next_try_at
                )
        except Exception:
            log.exception("notice %s: recording how its delivery went failed", notice_id)
            return
        if delivery == GIVEN_UP:
            log.error("notice %s: given up after %d tries", notice_id, attempts)
        else:
            log.warning(
                "notice %s: not delivered (try %d); next try at %s",
                notice_id,
                attempts,
                next_try_at,
            )

    async def run(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception:
                log.exception("sending the notices due failed; trying again")
            await asyncio.sleep(SWEEP_INTERVAL)

    def sweep(self) -> int:
        """Sends the notices due now (on the engine that leads); how many it sent."""
        if not self.leads():
            return 0
        now = self.clock.now()
        count = 0
        for notice in self.store.notices.due_notices(now):
            if notice.id is None or notice.id in self.in_flight:
                continue
            message = run_of(notice.message)
            if message is None or now - notice.at >= GIVE_UP_AFTER:
                self._give_up(notice, now)
                continue
            run, tail = message
            self.in_flight[notice.id] = Sending(notice.at, notice.attempts)
            extra = {"streak": notice.streak} if notice.stream == "failure" else {}
            self.send(list(notice.targets), with_notice(run, notice, **extra), tail)
            claimed = self.in_flight.get(notice.id)
            if claimed is not None and not claimed.started:
                del self.in_flight[notice.id]  # nothing took it: the next sweep tries
            count += 1
        return count

    def _give_up(self, notice: Notice, now: datetime) -> None:
        assert notice.id is not None
        with self.store.transaction() as tx:
            if self.fence is not None:
                self.fence(tx, now)
            tx.notices.set_delivery(notice.id, GIVEN_UP, attempts=notice.attempts)
        log.error("notice %s (%s of %s): given up", notice.id, notice.event, notice.job)
