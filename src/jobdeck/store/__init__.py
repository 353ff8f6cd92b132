"""The store: applied revisions, suspensions, the audit log, runs and claimed fires,
in SQLite or PostgreSQL."""

from jobdeck.store.errors import NotFound, RevisionConflict, RunAlreadyEnded, StoreError
from jobdeck.store.migrate import SchemaTooNew
from jobdeck.store.records import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    AuditEntry,
    Revision,
    Run,
    RunEvent,
    RunKind,
    RunStatus,
    RunStep,
    Suspension,
    Trigger,
)
from jobdeck.store.sql import Store, Tx, open_store

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "AuditEntry",
    "NotFound",
    "Revision",
    "RevisionConflict",
    "Run",
    "RunAlreadyEnded",
    "RunEvent",
    "RunKind",
    "RunStatus",
    "RunStep",
    "SchemaTooNew",
    "Store",
    "StoreError",
    "Suspension",
    "Trigger",
    "Tx",
    "open_store",
]
