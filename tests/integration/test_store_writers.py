"""How a long-running server writes to its store: the writers of one process take turns
on a lock (SQLite), and the WAL is checkpointed by the server, off the commits' path."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from jobdeck.store import Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def claim_many(store: Store, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        with store.transaction() as tx:
            tx.runs.claim_fire("tick", T0 + timedelta(seconds=i), decided_at=T0, host="h")


def test_writers_of_one_process_take_turns_without_sqlite_busy_waits(store: Store) -> None:
    """On SQLite a second writer waits for the first one's commit, then starts at once:
    the lock is handed over, not found free by SQLite's busy handler on one of its
    sleeps. On PostgreSQL writers of different rows do not wait for each other."""
    sqlite = store.single_writer
    entered = threading.Event()
    release = threading.Event()
    second_began: list[float] = []

    def first() -> None:
        with store.transaction() as tx:
            tx.runs.claim_fire("tick", T0, decided_at=T0, host="h")
            entered.set()
            release.wait(10)

    def second() -> None:
        with store.transaction() as tx:
            second_began.append(time.monotonic())
            tx.runs.claim_fire("tick", T0 + timedelta(seconds=1), decided_at=T0, host="h")

    one = threading.Thread(target=first)
    one.start()
    assert entered.wait(10)
    two = threading.Thread(target=second)
    two.start()
    if sqlite:
        time.sleep(0.2)  # the second writer is waiting by now (not a timing assertion)
        assert second_began == []
    else:
        two.join(10)
        assert len(second_began) == 1
    released = time.monotonic()
    release.set()
    one.join(10)
    two.join(10)
    assert len(second_began) == 1
    if sqlite:
        # SQLite's busy handler sleeps 50 ms between tries once it has waited this
        # long; a handed-over lock starts the second writer long before that.
        assert second_began[0] - released < 0.03
    assert store.runs.last_fires() == {"tick": T0 + timedelta(seconds=1)}


def test_a_server_checkpoints_the_wal_itself(store: Store) -> None:
    taken = store.take_over_checkpoints()
    if store.engine.dialect.name != "sqlite":
        assert taken is False
        return
    assert taken is True
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 0
    # Well past the 1,000 pages at which a commit would have checkpointed by itself.
    claim_many(store, 1500)
    frames, done = store.checkpoint()
    assert frames > 1000
    assert done == frames
    # The next writer starts the WAL over: it stays small with regular checkpoints.
    claim_many(store, 10, start=1500)
    frames, done = store.checkpoint()
    assert done == frames < 100
    assert len(store.runs.last_fires()) == 1
