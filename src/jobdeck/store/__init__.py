"""The store: applied revisions, suspensions, the audit log, runs and claimed fires,
queues and their messages, workers' leases and invocation keys, in SQLite or
PostgreSQL (or in memory, for tests), behind one Protocol per aggregate (ports)."""

from jobdeck.store.errors import (
    NotFound,
    QueueGone,
    RevisionConflict,
    RunAlreadyEnded,
    StoreError,
)
from jobdeck.store.migrate import SchemaTooNew
from jobdeck.store.ports import DataStore, Tx
from jobdeck.store.records import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    AuditEntry,
    Notice,
    Revision,
    Run,
    RunEvent,
    RunKind,
    RunStatus,
    RunStep,
    Suspension,
    Trigger,
)
from jobdeck.store.sql import SqlTx, Store, open_store

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "AuditEntry",
    "DataStore",
    "NotFound",
    "Notice",
    "QueueGone",
    "Revision",
    "RevisionConflict",
    "Run",
    "RunAlreadyEnded",
    "RunEvent",
    "RunKind",
    "RunStatus",
    "RunStep",
    "SchemaTooNew",
    "SqlTx",
    "Store",
    "StoreError",
    "Suspension",
    "Trigger",
    "Tx",
    "open_store",
]
