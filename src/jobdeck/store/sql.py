"""The store in SQLite or PostgreSQL: SQLAlchemy Core queries behind the Protocols of
:mod:`jobdeck.store.ports`.

Every unit of work is a :class:`SqlTx` from :meth:`Store.transaction`, one aggregate per
attribute (each in its own module: ``revisions_sql``, ``runs_sql``, ``queues_sql``,
``workers_sql``, ``invocations_sql``); it commits when the block ends and rolls back if
it raises. No method reads the clock: callers pass times.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from sqlalchemy import Connection, Engine

from jobdeck.store import migrate
from jobdeck.store.engine import (
    READ_ONLY,
    checkpoint,
    create_store_engine,
    display_url,
    store_url,
    take_over_checkpoints,
)
from jobdeck.store.errors import NotFound, RevisionConflict, StoreError
from jobdeck.store.invocations_sql import SqlKeys
from jobdeck.store.nodes_sql import SqlNodes
from jobdeck.store.notices_sql import SqlNotices
from jobdeck.store.ports import (
    AuditReads,
    KeyReads,
    NodeReads,
    NoticeReads,
    QueueReads,
    RevisionReads,
    RunReads,
    SuspensionReads,
    Tx,
    WorkerReads,
)
from jobdeck.store.queues_sql import SqlQueues
from jobdeck.store.revisions_sql import SqlAudit, SqlRevisions, SqlSuspensions
from jobdeck.store.runs_sql import SqlRuns
from jobdeck.store.views import read_view
from jobdeck.store.workers_sql import SqlWorkers

__all__ = [
    "NotFound",
    "OwnConnection",
    "RevisionConflict",
    "SqlTx",
    "Store",
    "StoreError",
    "Tx",
    "open_store",
]


def open_store(url: str | None = None, state_dir: str | Path = ".jobdeck") -> Store:
    """Opens the store at ``url``, or the SQLite file in ``state_dir`` when ``url`` is
    None, and migrates its schema to the newest version."""
    engine = create_store_engine(store_url(url, state_dir))
    try:
        migrate.upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)


class Store:
    """One database, shared by every thread and process of a jobdeck installation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = display_url(engine.url)
        # SQLite has one writer at a time. Writers of another process wait in SQLite's
        # busy handler, which sleeps in growing steps (up to 100 ms) between tries;
        # writers of this process (the event loop, the scheduler, the API's threads)
        # queue here instead, and the next one starts the moment the lock is free.
        self.write_lock: AbstractContextManager[object] = (
            threading.RLock() if engine.dialect.name == "sqlite" else nullcontext()
        )
        # One writer at a time (SQLite): callers that would hand a transaction to another
        # thread may as well run it where they are.
        self.single_writer = engine.dialect.name == "sqlite"
        # The connection of the thread that pinned one (see pin_writes), and that thread.
        self._pinned: Connection | None = None
        self._pinned_thread: int | None = None
        # Reads outside a transaction, each in a snapshot of its own (see views).
        self.revisions: RevisionReads = read_view(self.reading, "revisions", RevisionReads)
        self.suspensions: SuspensionReads = read_view(self.reading, "suspensions", SuspensionReads)
        self.audit: AuditReads = read_view(self.reading, "audit", AuditReads)
        self.runs: RunReads = read_view(self.reading, "runs", RunReads)
        self.queues: QueueReads = read_view(self.reading, "queues", QueueReads)
        self.workers: WorkerReads = read_view(self.reading, "workers", WorkerReads)
        self.keys: KeyReads = read_view(self.reading, "keys", KeyReads)
        self.notices: NoticeReads = read_view(self.reading, "notices", NoticeReads)
        self.nodes: NodeReads = read_view(self.reading, "nodes", NodeReads)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes every pooled connection; the store must not be used afterwards."""
        if self._pinned is not None:
            self._pinned.close()
            self._pinned = self._pinned_thread = None
        self.engine.dispose()

    def pin_writes(self) -> None:
        """Run the transactions of the calling thread on one connection of its own, on
        SQLite: for the engine's event loop, which writes a few times per run, a pool
        checkout, a reset and a check-in per transaction were a tenth of its time.
        Other threads use the pool as before. On PostgreSQL nothing changes (a pooled
        connection that the server dropped is replaced; a pinned one would not be)."""
        if self.engine.dialect.name == "sqlite" and self._pinned is None:
            self._pinned = self.engine.connect()
            self._pinned_thread = threading.get_ident()

    def take_over_checkpoints(self) -> bool:
        """For a long-running server on SQLite: checkpoint the WAL with
        :meth:`checkpoint`, off the commits' path. See :mod:`jobdeck.store.engine`."""
        return take_over_checkpoints(self.engine)

    def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL into the database as far as readers allow (SQLite)."""
        return checkpoint(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[SqlTx]:
        """One atomic unit of work: committed at the end, rolled back on an exception.

        On SQLite it holds the database's write lock from its start, so keep it short;
        concurrent writers wait for it (up to the busy timeout) instead of failing.
        """
        pinned = self._pinned
        if pinned is not None and threading.get_ident() == self._pinned_thread:
            with self.write_lock, pinned.begin():
                yield SqlTx(pinned)
            return
        with self.write_lock, self.engine.begin() as connection:
            yield SqlTx(connection)

    @contextmanager
    def reading(self) -> Iterator[SqlTx]:
        """A consistent snapshot for reads only; it does not wait for writers."""
        with self.engine.connect() as connection:
            connection.execution_options(**{READ_ONLY: True})
            with connection.begin():
                yield SqlTx(connection)

    def own_connection(self) -> OwnConnection:
        """Transactions on one connection of the caller's own, which spares a pool
        checkout per call. Only for a caller used by one thread at a time (the SQS
        endpoint on SQLite, whose requests all run on the event loop)."""
        return OwnConnection(self)


class OwnConnection:
    """One connection of its own for a caller's transactions (see Store.own_connection)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._connection = store.engine.connect()

    @contextmanager
    def transaction(self) -> Iterator[SqlTx]:
        """One unit of work, as :meth:`Store.transaction`, on this connection."""
        with self._store.write_lock, self._connection.begin():
            yield SqlTx(self._connection)

    def close(self) -> None:
        self._connection.close()


class SqlTx:
    """The aggregates of one unit of work, all on one connection and transaction."""

    __slots__ = (
        "audit",
        "connection",
        "keys",
        "nodes",
        "notices",
        "queues",
        "revisions",
        "runs",
        "suspensions",
        "workers",
    )

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.revisions = SqlRevisions(connection)
        self.suspensions = SqlSuspensions(connection)
        self.audit = SqlAudit(connection)
        self.runs = SqlRuns(connection)
        self.queues = SqlQueues(connection)
        self.workers = SqlWorkers(connection)
        self.keys = SqlKeys(connection)
        self.notices = SqlNotices(connection)
        self.nodes = SqlNodes(connection)
