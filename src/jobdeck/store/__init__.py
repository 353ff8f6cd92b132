"""The store: applied revisions, suspensions and the audit log, in SQLite or PostgreSQL."""

from jobdeck.store.migrate import SchemaTooNew
from jobdeck.store.records import AuditEntry, Revision, Suspension
from jobdeck.store.sql import NotFound, RevisionConflict, Store, StoreError, Tx, open_store

__all__ = [
    "AuditEntry",
    "NotFound",
    "Revision",
    "RevisionConflict",
    "SchemaTooNew",
    "Store",
    "StoreError",
    "Suspension",
    "Tx",
    "open_store",
]
