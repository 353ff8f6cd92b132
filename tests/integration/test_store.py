"""The store, against real SQLite and PostgreSQL: the same assertions on each."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from jobdeck.store import (
    AuditEntry,
    NotFound,
    Revision,
    RevisionConflict,
    SchemaTooNew,
    SqlTx,
    Store,
    Suspension,
    Tx,
    open_store,
)
from jobdeck.store.engine import display_url, store_url
from jobdeck.store.migrate import current_revision, head_revision
from jobdeck.store.tables import metadata

T0 = datetime(2024, 3, 10, 9, 0, tzinfo=UTC)
TOKYO = timezone(timedelta(hours=9))


def full_url(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def apply(tx: Tx, at: datetime = T0, **overrides: Any) -> Revision:
    fields: dict[str, Any] = {
        "applied_at": at,
        "applied_by": "alice",
        "catalog_sha256": "0" * 64,
        "git_describe": "v1.2-3-gabc1234",
        "source": "jobdeck.yaml",
        "text": "version: 1\nproject: newsroom\n",
        "catalog": {"version": 1, "project": "newsroom"},
    }
    fields.update(overrides)
    return tx.revisions.add_revision(**fields)


def suspend(tx: Tx, name: str, at: datetime = T0, **overrides: Any) -> Suspension:
    fields: dict[str, Any] = {"kind": "schedule", "reason": "r", "created_by": "a", "until": None}
    fields.update(overrides)
    return tx.suspensions.add_suspension(name=name, created_at=at, **fields)


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is UTC


# -- revisions -------------------------------------------------------------------------


def test_empty_store_has_nothing(store: Store) -> None:
    assert store.revisions.latest_revision() is None
    assert store.revisions.revision(1) is None
    assert store.revisions.revisions() == []
    assert store.suspensions.suspensions(T0, include_ended=True) == []
    assert store.audit.audit() == []


def test_revisions_are_numbered_from_one_and_listed_newest_first(store: Store) -> None:
    for minute in range(3):
        with store.transaction() as tx:
            added = apply(tx, T0 + timedelta(minutes=minute), applied_by=f"user{minute}")
            assert added.number == minute + 1

    latest = store.revisions.latest_revision()
    assert latest is not None
    assert (latest.number, latest.applied_by) == (3, "user2")
    second = store.revisions.revision(2)
    assert second is not None
    assert (second.number, second.applied_by) == (2, "user1")
    assert store.revisions.revision(4) is None
    assert [r.number for r in store.revisions.revisions()] == [3, 2, 1]
    assert [r.number for r in store.revisions.revisions(limit=2)] == [3, 2]
    # A listing does not read each revision's text and catalog.
    assert not any(hasattr(r, "text") or hasattr(r, "catalog") for r in store.revisions.revisions())


def test_revision_round_trips_text_json_and_time(store: Store) -> None:
    catalog = {
        "project": "newsroom",
        "timezone": "Asia/Tokyo",
        "schedules": {"ranking": {"cron": "*/10 * * * *", "env": {"WINDOW": "24h"}}},
        "commands": {"breaking-push": {"params": {"title": {"max_length": 120}}}},
        "numbers": [1, 2.5, -3, 0],
        "flags": {"on": True, "off": False, "nothing": None},
        "unicode": "速報 — ✓",
        "empty": {},
    }
    applied_at = datetime(2024, 3, 10, 18, 30, 15, 123456, tzinfo=TOKYO)
    with store.transaction() as tx:
        returned = apply(tx, applied_at, catalog=catalog, text="速報:\n  x: 1\n", git_describe=None)
    stored = store.revisions.latest_revision()

    assert stored == returned
    assert stored is not None
    assert stored.catalog == catalog
    assert stored.text == "速報:\n  x: 1\n"
    assert stored.git_describe is None
    assert stored.applied_at == applied_at
    assert stored.applied_at == datetime(2024, 3, 10, 9, 30, 15, 123456, tzinfo=UTC)
    assert_utc(stored.applied_at)


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"), store.transaction() as tx:
        apply(tx, datetime(2024, 3, 10, 9, 0))
    assert store.revisions.latest_revision() is None


def test_an_exception_rolls_the_whole_unit_back(store: Store) -> None:
    def unit_that_fails() -> None:
        with store.transaction() as tx:
            apply(tx)
            suspend(tx, "x")
            tx.audit.record_audit(AuditEntry(at=T0, actor="a", via="cli", action="apply"))
            assert tx.revisions.latest_revision() is not None
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        unit_that_fails()

    assert store.revisions.latest_revision() is None
    assert store.suspensions.suspensions(T0, include_ended=True) == []
    assert store.audit.audit() == []
    with store.transaction() as tx:
        assert apply(tx).number == 1


def test_reads_see_committed_state_and_do_not_wait_for_a_writer(store: Store) -> None:
    with store.transaction() as tx:
        apply(tx)
    with store.transaction() as tx:
        apply(tx)
        # Another connection, while this one holds the write lock on SQLite.
        latest = store.revisions.latest_revision()
        assert latest is not None
        assert latest.number == 1
    latest = store.revisions.latest_revision()
    assert latest is not None
    assert latest.number == 2


def test_concurrent_applies_never_share_a_number(store: Store) -> None:
    contender_started = threading.Event()
    outcome: list[int | Exception] = []

    def contender() -> None:
        contender_started.set()
        try:
            with store.transaction() as tx:
                tx.revisions.latest_revision()
                outcome.append(apply(tx, applied_by="bob").number)
        except RevisionConflict as conflict:
            outcome.append(conflict)

    with store.transaction() as tx:
        first = apply(tx)
        thread = threading.Thread(target=contender)
        thread.start()
        assert contender_started.wait(5)
        # Give the contender time to block: on SQLite at BEGIN IMMEDIATE, on PostgreSQL
        # on the uncommitted number. The assertions hold however the race goes.
        thread.join(0.3)
    thread.join(30)
    assert not thread.is_alive()

    assert first.number == 1
    [second] = outcome
    assert second == 2 or isinstance(second, RevisionConflict)
    numbers = [r.number for r in store.revisions.revisions()]
    assert len(numbers) == len(set(numbers))
    assert sorted(numbers) == ([1, 2] if second == 2 else [1])


APPLY_LOOP = """
import sys
from datetime import UTC, datetime
from jobdeck.store import RevisionConflict, open_store

url, count, who = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conflicts = 0
with open_store(url) as store:
    applied = 0
    while applied < count:
        try:
            with store.transaction() as tx:
                tx.revisions.latest_revision()
                tx.revisions.add_revision(
                    applied_at=datetime.now(UTC), applied_by=who, catalog_sha256="0" * 64,
                    git_describe=None, source="jobdeck.yaml", text="", catalog={},
                )
            applied += 1
        except RevisionConflict:
            conflicts += 1
print(conflicts)
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a database that nothing has migrated yet, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'jobdeck.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def test_processes_migrate_and_apply_concurrently(empty_store_url: str) -> None:
    processes, each = 4, 8
    children = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-c", APPLY_LOOP, empty_store_url, str(each), f"p{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    for child in children:
        _out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err

    with open_store(empty_store_url) as store:
        revisions = store.revisions.revisions(limit=1000)
    assert sorted(r.number for r in revisions) == list(range(1, processes * each + 1))
    by_process = {f"p{i}": 0 for i in range(processes)}
    for revision in revisions:
        by_process[revision.applied_by] += 1
    assert set(by_process.values()) == {each}


# -- suspensions -----------------------------------------------------------------------


def test_suspension_is_active_until_it_expires(store: Store) -> None:
    until = T0 + timedelta(hours=2)
    with store.transaction() as tx:
        added = suspend(tx, "ranking", T0.astimezone(TOKYO), reason="buggy", until=until)
    assert added.id > 0
    assert (added.kind, added.name, added.reason) == ("schedule", "ranking", "buggy")
    assert added.created_at == T0
    assert added.until == until
    assert_utc(added.created_at)
    assert_utc(added.until)
    assert added.ended_at is None
    assert added.ended_by is None

    with store.transaction() as tx:
        assert tx.suspensions.active_suspension("schedule", "ranking", T0) == added
        assert (
            tx.suspensions.active_suspension("schedule", "ranking", until - timedelta(seconds=1))
            == added
        )
        assert tx.suspensions.active_suspension("schedule", "ranking", until) is None
        assert tx.suspensions.active_suspension("worker", "ranking", T0) is None
        assert tx.suspensions.active_suspension("schedule", "other", T0) is None
    assert store.suspensions.suspensions(T0) == [added]
    assert store.suspensions.suspensions(until) == []
    assert store.suspensions.suspensions(until, include_ended=True) == [added]


def test_ending_a_suspension_records_who_and_when(store: Store) -> None:
    with store.transaction() as tx:
        added = suspend(tx, "feed", kind="worker")
    resumed_at = T0 + timedelta(minutes=5)
    with store.transaction() as tx:
        ended = tx.suspensions.end_suspension(added.id, ended_by="bob", ended_at=resumed_at)
    assert ended.ended_by == "bob"
    assert ended.ended_at == resumed_at
    assert_utc(ended.ended_at)
    assert not ended.active(resumed_at)

    with store.transaction() as tx:
        assert tx.suspensions.active_suspension("worker", "feed", resumed_at) is None
        # Ending it again keeps the first record of who resumed it.
        again = tx.suspensions.end_suspension(
            added.id, ended_by="carol", ended_at=T0 + timedelta(hours=1)
        )
        assert again == ended
        with pytest.raises(NotFound):
            tx.suspensions.end_suspension(added.id + 1000, ended_by="x", ended_at=resumed_at)
    assert store.suspensions.suspensions(resumed_at) == []
    assert store.suspensions.suspensions(resumed_at, include_ended=True) == [ended]


def test_suspensions_are_listed_newest_first(store: Store) -> None:
    with store.transaction() as tx:
        created = [
            suspend(tx, f"c{i}", T0 + timedelta(minutes=i), until=T0 + timedelta(hours=2 * i))
            for i in range(3)
        ]
        tx.suspensions.end_suspension(
            created[0].id, ended_by="a", ended_at=T0 + timedelta(minutes=10)
        )
    later = T0 + timedelta(minutes=30)
    assert [s.name for s in store.suspensions.suspensions(later)] == ["c2", "c1"]
    assert [s.name for s in store.suspensions.suspensions(T0 + timedelta(hours=2))] == ["c2"]
    assert [s.name for s in store.suspensions.suspensions(later, include_ended=True)] == [
        "c2",
        "c1",
        "c0",
    ]
    with store.transaction() as tx:
        assert [s.name for s in tx.suspensions.suspensions(later)] == ["c2", "c1"]


def test_the_newest_of_several_active_suspensions_is_reported(store: Store) -> None:
    with store.transaction() as tx:
        for minute, reason in ((0, "first"), (1, "second")):
            suspend(tx, "x", T0 + timedelta(minutes=minute), reason=reason)
        active = tx.suspensions.active_suspension("schedule", "x", T0 + timedelta(minutes=2))
    assert active is not None
    assert active.reason == "second"


# -- audit -----------------------------------------------------------------------------


def test_audit_is_newest_first_and_paginated(store: Store) -> None:
    recorded: list[AuditEntry] = []
    with store.transaction() as tx:
        for i in range(5):
            entry = AuditEntry(
                at=T0 + timedelta(minutes=i),
                actor=f"user{i}",
                via="slack",
                action="invoke",
                target="breaking-push",
                outcome="refused" if i == 3 else "ok",
                detail={"params": {"title": f"速報 {i}", "audience": "all"}, "n": i},
            )
            saved = tx.audit.record_audit(entry)
            assert saved.id is not None
            assert saved == dataclasses.replace(entry, id=saved.id)
            recorded.append(saved)
        # Same instant as the newest: the one recorded later comes first.
        tie = AuditEntry(at=T0 + timedelta(minutes=4), actor="x", via="cli", action="apply")
        recorded.append(tx.audit.record_audit(tie))

    newest_first = list(reversed(recorded))
    assert store.audit.audit() == newest_first
    assert store.audit.audit(limit=2) == newest_first[:2]
    assert store.audit.audit(limit=2, offset=2) == newest_first[2:4]
    assert store.audit.audit(limit=10, offset=5) == newest_first[5:]
    assert store.audit.audit(limit=10, offset=6) == []
    for entry in store.audit.audit():
        assert_utc(entry.at)
    assert store.audit.audit()[2].outcome == "refused"
    assert store.audit.audit()[-1].detail == {
        "params": {"title": "速報 0", "audience": "all"},
        "n": 0,
    }


# -- schema and wiring -----------------------------------------------------------------


def test_opening_again_is_a_no_op_migration(store: Store) -> None:
    with store.transaction() as tx:
        apply(tx)
    for _ in range(2):
        with open_store(full_url(store)) as again:
            assert current_revision(again.engine) == head_revision()
            latest = again.revisions.latest_revision()
            assert latest is not None
            assert latest.number == 1


def test_migrated_schema_matches_the_tables(store: Store) -> None:
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
        connection.rollback()
    assert differences == []


def test_a_schema_newer_than_this_jobdeck_is_refused(store: Store) -> None:
    with store.transaction() as tx:
        tx.connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaTooNew, match="9999"):
        open_store(full_url(store))


def test_sqlite_store_lives_in_the_state_dir_with_wal(tmp_path: Path) -> None:
    state_dir = tmp_path / "nested" / "state"
    with open_store(state_dir=state_dir) as store:
        assert store.url == f"sqlite:///{state_dir / 'jobdeck.db'}"
        with store.transaction() as tx:
            apply(tx)
        with store.engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "foreign_keys": 1,
        "busy_timeout": 10_000,
    }
    assert (state_dir / "jobdeck.db").is_file()


def test_store_urls() -> None:
    pg = store_url("postgresql://jobs:s3cret@db.example:5432/jobdeck", ".")
    assert pg.drivername == "postgresql+psycopg"
    assert display_url(pg) == "postgresql://jobs:***@db.example:5432/jobdeck"
    assert store_url("postgres://db.example/jobdeck", ".").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="unsupported store URL"):
        store_url("mysql://db.example/jobdeck", ".")
    with pytest.raises(ValueError, match="in-memory"):
        store_url("sqlite://", ".")


def _entry(actor: str) -> AuditEntry:
    return AuditEntry(
        at=datetime(2024, 3, 10, tzinfo=UTC),
        actor=actor,
        via="cli",
        action="apply",
        target="revision 1",
        outcome="ok",
    )


def test_a_threads_pinned_writes_run_on_one_connection(store: Store) -> None:
    """The engine's event loop writes on a connection of its own (SQLite); every other
    thread, and every read, goes through the pool as before, and sees its writes."""
    connections: list[object] = []

    def used(tx: SqlTx) -> None:
        connections.append(tx.connection.connection.dbapi_connection)

    store.pin_writes()
    if store.engine.dialect.name != "sqlite":
        assert store._pinned is None, "a pooled connection to a server can be replaced"
        return
    assert store._pinned is not None
    pinned = store._pinned.connection.dbapi_connection
    for actor in ("first", "second"):
        with store.transaction() as tx:
            tx.audit.record_audit(_entry(actor))
            used(tx)
    assert connections == [pinned, pinned]

    # A unit of work that fails is rolled back, and the connection serves the next one.
    def fails() -> None:
        with store.transaction() as tx:
            tx.audit.record_audit(_entry("rolled back"))
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        fails()
    with store.transaction() as tx:
        tx.audit.record_audit(_entry("third"))
        used(tx)
    assert connections[2] is pinned

    def elsewhere() -> None:
        with store.transaction() as tx:
            tx.audit.record_audit(_entry("other thread"))
            used(tx)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert connections[3] is not pinned
    assert [e.actor for e in store.audit.audit()] == ["other thread", "third", "second", "first"]
    store.close()
    assert store._pinned is None
