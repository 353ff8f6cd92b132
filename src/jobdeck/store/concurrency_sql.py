"""The store's queries for concurrency keys (see ``concurrency_claims`` in tables.py).

A claim is decided in the caller's transaction, serialized per key: on PostgreSQL by a
transaction-scoped advisory lock on the key (taken before anything of the key is read,
so two engines claiming one key take turns); on SQLite by its single writer (the claim
writes first, which takes the write lock, then reads). So never more than ``limit``
active runs hold one key, whichever connection or process claims it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from jobdeck.store.key_records import KeyRun, KeyUse
from jobdeck.store.records import ACTIVE_STATUSES, TERMINAL_STATUSES
from jobdeck.store.tables import as_utc, concurrency_claims, runs

_c = concurrency_claims.c
# A key's advisory lock: the key's hash in a space of jobdeck's own.
_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('jobdeck.concurrency:' || :key))")
_ACTIVE = runs.c.status.in_(ACTIVE_STATUSES)
# The reason a waiting run shows.
REASON = "concurrency"


def claim(connection: Connection, run_id: int, key: str, limit: int, at: datetime) -> bool:
    """Run ``run_id`` asks for ``key``: True when it holds it (now, or since earlier).
    It gets it when fewer than ``limit`` active runs hold the key and fewer than the
    free places wait before it (older run ids: oldest request first). A run that does
    not get it waits, with reason ``concurrency``; one that gets it loses that reason."""
    at = as_utc(at, "at")
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(_LOCK, {"key": key})
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    connection.execute(
        insert(concurrency_claims)
        .values(run_id=run_id, key=key, key_limit=limit, requested_at=at)
        .on_conflict_do_update(
            # A waiter asks for the key its item names now (a new revision may change
            # it); a holder keeps the key it holds.
            index_elements=[_c.run_id],
            set_={"key": key, "key_limit": limit},
            where=_c.held_since.is_(None),
        )
    )
    ended = select(runs.c.id).where(runs.c.status.in_(TERMINAL_STATUSES))
    connection.execute(
        delete(concurrency_claims).where(_c.key == key, _c.run_id.in_(ended.scalar_subquery()))
    )
    found = connection.execute(
        select(_c.run_id, _c.key, _c.held_since)
        .join(runs, runs.c.id == _c.run_id)
        .where(or_(_c.key == key, _c.run_id == run_id), _ACTIVE)
        .order_by(_c.run_id)
    ).all()
    mine = next((row for row in found if row.run_id == run_id), None)
    if mine is None:
        return False  # the run has ended: it never holds anything
    if mine.held_since is not None:
        return True  # held already (the key it got, should its item name another now)
    rows = [row for row in found if row.key == key]
    held = sum(1 for row in rows if row.held_since is not None)
    ahead = sum(1 for row in rows if row.held_since is None and row.run_id < run_id)
    if held + ahead < limit:
        connection.execute(
            update(concurrency_claims).where(_c.run_id == run_id).values(held_since=at)
        )
        connection.execute(
            update(runs).where(runs.c.id == run_id, runs.c.reason == REASON).values(reason=None)
        )
        return True
    connection.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.status == "pending", runs.c.reason.is_(None))
        .values(reason=REASON)
    )
    return False


def key_uses(connection: Connection, keys: Iterable[str] | None = None) -> list[KeyUse]:
    """Every key that active runs hold or wait for (of ``keys``, when given), by name."""
    query = (
        select(_c.key, _c.key_limit, _c.run_id, _c.requested_at, _c.held_since, runs.c.kind)
        .add_columns(runs.c.job)
        .join(runs, runs.c.id == _c.run_id)
        .where(_ACTIVE)
        .order_by(_c.key, _c.run_id)
    )
    if keys is not None:
        query = query.where(_c.key.in_(list(keys)))
    return group(
        (row.key, row.key_limit, row.run_id, row.kind, row.job, row.requested_at, row.held_since)
        for row in connection.execute(query)
    )


def run_key(connection: Connection, run_id: int) -> str | None:
    """The key the run holds or waits for, if it asked for one."""
    value = connection.scalar(select(_c.key).where(_c.run_id == run_id))
    return None if value is None else str(value)


Row = tuple[str, int, int, str, str, datetime, datetime | None]


def group(rows: Iterable[Row]) -> list[KeyUse]:
    """Rows (key, limit, run id, kind, job, requested at, held since), ordered by key
    and run id, as one :class:`KeyUse` per key (the limit of its newest claim)."""
    found: dict[str, tuple[int, list[KeyRun], list[KeyRun]]] = {}
    for key, limit, run_id, kind, job, requested_at, held_since in rows:
        _, holders, waiters = found.setdefault(key, (limit, [], []))
        found[key] = (limit, holders, waiters)
        if held_since is not None:
            holders.append(KeyRun(run_id, kind, job, as_utc(held_since)))
        else:
            waiters.append(KeyRun(run_id, kind, job, as_utc(requested_at)))
    return [
        KeyUse(key, limit, tuple(holders), tuple(waiters))
        for key, (limit, holders, waiters) in sorted(found.items())
    ]
