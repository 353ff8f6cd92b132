"""The core of the queue service: the queue cache, transactions and lookups, which every
group of SQS actions (:mod:`jobdeck.queues.service`, :mod:`jobdeck.queues.delivery`, ...)
builds on.


Durability on SQLite: the store runs in WAL mode with ``synchronous=NORMAL`` (see
``jobdeck.store.engine``). A commit has been written to the WAL, in the operating
system's hands, before it returns, so an acknowledged message survives any crash of the
server process, ``kill -9`` included; only a power loss or kernel crash can take the
last commits since the WAL's previous sync. ``FULL`` would close that gap with an fsync
per commit; in ``bench/sqs.py`` that costs a fifth to a third of the throughput. The queues
ask for what the rest of the store (runs, revisions) has.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from jobdeck.clock import Clock
from jobdeck.queues.attributes import LOCAL_ACCOUNT_ID
from jobdeck.queues.errors import no_such_queue
from jobdeck.queues.params import Params, Result, queue_name_from_url, required
from jobdeck.store import DataStore, QueueGone, Store, Tx
from jobdeck.store.queue_records import QueueRecord
from jobdeck.store.sql import OwnConnection

# How long a queue's settings are taken from memory before the store is read again.
QUEUE_CACHE_S = 1.0


def now_ms(clock: Clock) -> int:
    return int(clock.now().timestamp() * 1000)


class ServiceCore:
    """What every group of actions shares; one instance serves one endpoint."""

    def __init__(self, store: DataStore, clock: Clock, base_url: str) -> None:
        self.store = store
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self._known: dict[str, tuple[float, QueueRecord]] = {}
        self._pinned: OwnConnection | None = None

    # -- the queue cache -------------------------------------------------------------

    def _queue(self, tx: Tx, name: str) -> QueueRecord:
        queue = self._queue_or_none(tx, name)
        if queue is None:
            raise no_such_queue()
        return queue

    def _queue_or_none(self, tx: Tx, name: str) -> QueueRecord | None:
        """The queue, from a cache of at most QUEUE_CACHE_S: the hot actions would
        otherwise read the queue's row on every call. Changes made through this service
        apply at once; those of another process (an apply) within the cache's age."""
        now = time.monotonic()
        hit = self._known.get(name)
        if hit is not None and now - hit[0] < QUEUE_CACHE_S:
            return hit[1]
        queue = tx.queues.queue(name)
        if queue is None:
            self._known.pop(name, None)
        else:
            self._known[name] = (now, queue)
        return queue

    # -- transactions ----------------------------------------------------------------

    def pin_connection(self) -> None:
        """Runs every transaction of this service on one connection of its own, which
        spares a pool checkout per call. Only for a service used by one thread at a
        time (the endpoint on SQLite, whose requests all run on the event loop)."""
        if self._pinned is None and isinstance(self.store, Store):  # only SQL has connections
            self._pinned = self.store.own_connection()

    def close(self) -> None:
        if self._pinned is not None:
            self._pinned.close()
            self._pinned = None

    def transaction(self) -> AbstractContextManager[Tx]:
        """One unit of work, as :meth:`Store.transaction` (on the pinned connection)."""
        if self._pinned is None:
            return self.store.transaction()
        return self._pinned.transaction()

    @contextmanager
    def _sending(self, name: str) -> Iterator[Tx]:
        """A transaction that enqueues: a queue deleted by another process meanwhile
        (still in the cache) refuses the insert, which is SQS's missing queue."""
        try:
            with self.transaction() as tx:
                yield tx
        except QueueGone:
            self._known.pop(name, None)
            raise no_such_queue() from None

    def default_wait(self, params: Params) -> Result:
        """The queue's ReceiveMessageWaitTimeSeconds, for a receive that gives none."""
        name = self.queue_name(params)
        hit = self._known.get(name)
        if hit is not None and time.monotonic() - hit[0] < QUEUE_CACHE_S:
            queue: QueueRecord | None = hit[1]
        else:
            with self.store.reading() as tx:
                queue = self._queue_or_none(tx, name)
        return {"wait": 0 if queue is None else queue.settings.receive_wait_seconds}

    def url_of(self, name: str) -> str:
        return f"{self.base_url}/{LOCAL_ACCOUNT_ID}/{name}"

    def queue_name(self, params: Params) -> str:
        return queue_name_from_url(required(params, "QueueUrl"))


def read_queue(tx: Tx, name: str, *, for_update: bool = False) -> QueueRecord:
    queue = tx.queues.queue(name, for_update=for_update)
    if queue is None:
        raise no_such_queue()
    return queue
