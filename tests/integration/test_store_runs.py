"""Runs, run events and claimed fires in the store: the same assertions on every backend."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from jobdeck.store import (
    NotFound,
    Run,
    RunAlreadyEnded,
    RunStatus,
    RunStep,
    Store,
    StoreError,
    Tx,
    open_store,
)
from jobdeck.store.engine import create_store_engine, store_url
from jobdeck.store.migrate import alembic_config, current_revision, head_revision, upgrade
from jobdeck.store.tables import fires

T0 = datetime(2024, 3, 10, 9, 0, tzinfo=UTC)
TOKYO = timezone(timedelta(hours=9))


def full_url(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def new_run(tx: Tx, job: str = "ranking", **overrides: Any) -> Run:
    fields: dict[str, Any] = {
        "kind": "schedule",
        "trigger": "schedule",
        "status": "pending",
        "created_at": T0,
    }
    fields.update(overrides)
    return tx.runs.create_run(job=job, **fields)


def claim(tx: Tx, nominal: datetime, schedule: str = "ranking", host: str = "h1") -> bool:
    return tx.runs.claim_fire(
        schedule, nominal, decided_at=nominal + timedelta(seconds=1), host=host
    )


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is UTC


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Runs ``work(i)`` in ``count`` threads released at once; their results or errors."""
    barrier = threading.Barrier(count)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def contender(index: int) -> None:
        barrier.wait(10)
        try:
            result: Any = work(index)
        except Exception as error:
            result = error
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    return outcomes


# -- fires -----------------------------------------------------------------------------


def test_a_fire_is_claimed_once(store: Store) -> None:
    with store.transaction() as tx:
        assert claim(tx, T0)
        # Losing leaves the unit of work usable.
        assert not claim(tx, T0, host="h2")
        assert claim(tx, at(10))
        assert claim(tx, T0, schedule="other")
    with store.transaction() as tx:
        assert not claim(tx, T0, host="h3")
        # The same instant written in another zone is the same slot.
        assert not claim(tx, T0.astimezone(TOKYO))
        assert claim(tx, at(20))

    with store.reading() as tx:
        rows = tx.connection.execute(select(fires).order_by(fires.c.nominal_time)).mappings()
        claimed = [(r["schedule"], r["nominal_time"], r["host"]) for r in rows]
    expected = [("ranking", T0), ("other", T0), ("ranking", at(10)), ("ranking", at(20))]
    assert sorted(claimed) == sorted((schedule, nominal, "h1") for schedule, nominal in expected)


def test_a_claim_that_rolls_back_frees_the_slot(store: Store) -> None:
    def claim_and_die() -> None:
        with store.transaction() as tx:
            assert claim(tx, T0)
            raise RuntimeError("the engine died before committing")

    with pytest.raises(RuntimeError, match="died"):
        claim_and_die()
    assert store.runs.last_fire("ranking") is None
    with store.transaction() as tx:
        assert claim(tx, T0, host="h2")


def test_threads_racing_for_a_fire_have_one_winner(store: Store) -> None:
    def contend(index: int) -> bool:
        with store.transaction() as tx:
            return claim(tx, T0, host=f"h{index}")

    outcomes = in_threads(6, contend)
    assert sorted(outcomes) == [False] * 5 + [True]


CLAIM_LOOP = """
import json, sys
from datetime import UTC, datetime, timedelta
from jobdeck.store import open_store

url, count, host = sys.argv[1], int(sys.argv[2]), sys.argv[3]
start = datetime(2024, 3, 10, 9, 0, tzinfo=UTC)
won = []
with open_store(url) as store:
    for minute in range(count):
        nominal = start + timedelta(minutes=minute)
        with store.transaction() as tx:
            if tx.runs.claim_fire("ranking", nominal, decided_at=datetime.now(UTC), host=host):
                won.append(minute)
print(json.dumps(won))
"""


def test_processes_racing_for_fires_never_share_one(store: Store) -> None:
    processes, slots = 4, 25
    children = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-c", CLAIM_LOOP, full_url(store), str(slots), f"p{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    won: list[int] = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        won.extend(json.loads(out))
    assert sorted(won) == list(range(slots))
    assert store.runs.last_fire("ranking") == at(slots - 1)


def test_last_fire_is_the_newest_nominal_time_claimed(store: Store) -> None:
    assert store.runs.last_fire("ranking") is None
    with store.transaction() as tx:
        for minute in (10, 30, 20):
            claim(tx, at(minute))
        claim(tx, at(50), schedule="other")
        assert tx.runs.last_fire("ranking") == at(30)
    last = store.runs.last_fire("ranking")
    assert last == at(30)
    assert_utc(last)
    assert store.runs.last_fire("other") == at(50)
    assert store.runs.last_fire("unknown") is None
    every = store.runs.last_fires()
    assert every == {"ranking": at(30), "other": at(50)}
    assert_utc(every["ranking"])


def test_a_claimed_fire_is_linked_to_its_run(store: Store) -> None:
    with store.transaction() as tx:
        assert claim(tx, T0)
        run = new_run(tx, scheduled_for=T0)
        tx.runs.attach_fire("ranking", T0.astimezone(TOKYO), run.id)
        with pytest.raises(NotFound):
            tx.runs.attach_fire("ranking", at(1), run.id)
    with store.reading() as tx:
        linked = tx.connection.scalar(select(fires.c.run_id).where(fires.c.schedule == "ranking"))
    assert linked == run.id


# -- runs and their history ------------------------------------------------------------


def test_a_run_is_created_with_its_fields_and_a_created_event(store: Store) -> None:
    with store.transaction() as tx:
        first = new_run(tx, status="failed", reason="launch_error")
        created = tx.runs.create_run(
            job="breaking-push",
            kind="command",
            trigger="retry",
            status="pending",
            created_at=T0.astimezone(TOKYO),
            reason=None,
            attempt=2,
            scheduled_for=at(-1),
            pool="tools",
            revision=3,
            retry_of=first.id,
            requested_by="U123",
            host="batch-1",
            params={"title": "速報", "audience": "all"},
            detail={"lateness_s": 0.25},
        )
    assert created.id > first.id
    assert store.runs.run(created.id) == created
    assert created == Run(
        id=created.id,
        job="breaking-push",
        kind="command",
        trigger="retry",
        status="pending",
        created_at=T0,
        attempt=2,
        scheduled_for=at(-1),
        pool="tools",
        revision=3,
        retry_of=first.id,
        requested_by="U123",
        host="batch-1",
        params={"title": "速報", "audience": "all"},
        detail={"lateness_s": 0.25},
    )
    assert created.active
    assert_utc(created.created_at)
    assert_utc(created.scheduled_for)

    [event] = store.runs.events(created.id)
    assert (event.run_id, event.at, event.type) == (created.id, T0, "created")
    assert event.detail == {"status": "pending", "reason": None}
    assert event.id is not None
    assert_utc(event.at)
    [failed] = store.runs.events(first.id)
    assert failed.detail == {"status": "failed", "reason": "launch_error"}

    minimal = store.runs.run(first.id)
    assert minimal is not None
    assert (minimal.attempt, minimal.params, minimal.detail) == (1, {}, {})
    assert minimal.scheduled_for is None
    assert store.runs.run(created.id + 1000) is None


def test_updates_set_the_given_fields_and_record_the_history(store: Store) -> None:
    with store.transaction() as tx:
        run = new_run(tx, detail={"run_dir": "/runs/1", "lateness_s": 0.5})
    with store.transaction() as tx:
        started = tx.runs.update_run(
            run.id,
            at=at(1),
            event="started",
            status="running",
            started_at=at(1).astimezone(TOKYO),
            detail={"pid": 4242},
        )
        tx.runs.add_event(run.id, at=at(2), type="heartbeat", detail={"rss_bytes": 1024})
        tx.runs.add_event(run.id, at=at(2), type="note")
    assert started.status == "running"
    assert started.started_at == at(1)
    assert_utc(started.started_at)
    assert started.detail == {"run_dir": "/runs/1", "lateness_s": 0.5, "pid": 4242}
    assert (started.reason, started.ended_at, started.exit_code) == (None, None, None)

    with store.transaction() as tx:
        ended = tx.runs.update_run(
            run.id,
            at=at(5),
            event="ended",
            status="failed",
            reason="exit_code",
            ended_at=at(5),
            exit_code=3,
            # A key given again is replaced; the others are kept.
            detail={"pid": None, "peak_memory_bytes": 2048},
        )
    assert store.runs.run(run.id) == ended
    assert (ended.status, ended.reason, ended.exit_code) == ("failed", "exit_code", 3)
    assert (ended.started_at, ended.ended_at) == (at(1), at(5))
    assert ended.detail == {
        "run_dir": "/runs/1",
        "lateness_s": 0.5,
        "pid": None,
        "peak_memory_bytes": 2048,
    }
    assert not ended.active

    history = store.runs.events(run.id)
    assert [(e.type, e.at) for e in history] == [
        ("created", T0),
        ("started", at(1)),
        ("heartbeat", at(2)),
        ("note", at(2)),
        ("ended", at(5)),
    ]
    assert history[1].detail == {
        "status": "running",
        "started_at": at(1).isoformat(),
        "detail": {"pid": 4242},
    }
    assert history[2].detail == {"rss_bytes": 1024}
    assert history[3].detail == {}
    assert history[4].detail == {
        "status": "failed",
        "reason": "exit_code",
        "ended_at": at(5).isoformat(),
        "exit_code": 3,
        "detail": {"pid": None, "peak_memory_bytes": 2048},
    }
    ids = [e.id for e in history if e.id is not None]
    assert len(ids) == len(history)
    assert ids == sorted(ids)


def test_an_update_with_nothing_to_set_only_records_the_event(store: Store) -> None:
    with store.transaction() as tx:
        run = new_run(tx)
        same = tx.runs.update_run(run.id, at=at(1), event="dispatched")
    assert same == run
    assert [e.type for e in store.runs.events(run.id)] == ["created", "dispatched"]
    assert store.runs.events(run.id)[1].detail == {}


def test_unknown_runs_are_reported(store: Store) -> None:
    with store.transaction() as tx:
        with pytest.raises(NotFound):
            tx.runs.update_run(99, at=T0, event="started", status="running")
        with pytest.raises(NotFound):
            tx.runs.add_event(99, at=T0, type="note")
        # Neither poisoned the unit of work.
        run = new_run(tx)
    assert store.runs.events(99) == []
    assert store.runs.run(run.id) == run


def test_a_final_status_is_final(store: Store) -> None:
    with store.transaction() as tx:
        run = new_run(tx)
        tx.runs.update_run(run.id, at=at(1), event="started", status="running")
        done = tx.runs.update_run(run.id, at=at(2), event="ended", status="succeeded", exit_code=0)
    with store.transaction() as tx:
        for status in ("failed", "succeeded", "lost", "running"):
            with pytest.raises(RunAlreadyEnded, match="succeeded") as refused:
                tx.runs.update_run(run.id, at=at(3), event="ended", status=status, exit_code=1)
            assert isinstance(refused.value, StoreError)
        # What is not the outcome can still be added to an ended run.
        later = tx.runs.update_run(run.id, at=at(4), event="measured", detail={"peak": 7})
    assert later.status == "succeeded"
    assert later.exit_code == 0
    assert later.detail == {"peak": 7}
    assert store.runs.run(run.id) == later
    assert [e.type for e in store.runs.events(run.id)] == [
        "created",
        "started",
        "ended",
        "measured",
    ]
    assert done.status == "succeeded"

    with store.transaction() as tx:
        skipped = new_run(tx, status="skipped", reason="overlap")
        with pytest.raises(RunAlreadyEnded):
            tx.runs.update_run(skipped.id, at=at(1), event="started", status="running")


def test_steps_are_one_write_of_the_run_with_an_event_each(store: Store) -> None:
    with store.transaction() as tx:
        run = new_run(tx, detail={"requested_at": "x"})
        steps = [
            RunStep("started", "running", started_at=at(1), detail={"pid": 7, "launch": "warm"}),
            RunStep("ended", "succeeded", exit_code=0, ended_at=at(1), detail={"launch": "x"}),
        ]
        ended = tx.runs.update_run_steps(run.id, at=at(1), steps=steps)
    assert (ended.status, ended.exit_code) == ("succeeded", 0)
    assert (ended.started_at, ended.ended_at) == (at(1), at(1))
    # Merged in order: a later step's key wins.
    assert ended.detail == {"requested_at": "x", "pid": 7, "launch": "x"}
    assert store.runs.run(run.id) == ended
    events = store.runs.events(run.id)
    assert [e.type for e in events] == ["created", "started", "ended"]
    assert events[1].detail == {
        "status": "running",
        "started_at": at(1).isoformat(),
        "detail": {"pid": 7, "launch": "warm"},
    }
    assert events[2].detail == {
        "status": "succeeded",
        "exit_code": 0,
        "ended_at": at(1).isoformat(),
        "detail": {"launch": "x"},
    }


def test_a_step_after_a_final_one_is_refused_with_the_others(store: Store) -> None:
    with store.transaction() as tx:
        run = new_run(tx)
    twice = [RunStep("ended", "succeeded"), RunStep("ended", "failed")]
    with pytest.raises(RunAlreadyEnded, match="succeeded"), store.transaction() as tx:
        tx.runs.update_run_steps(run.id, at=at(1), steps=twice)
    assert store.runs.run(run.id) == run
    assert [e.type for e in store.runs.events(run.id)] == ["created"]


def test_steps_onto_a_known_run_write_it_without_reading_it(store: Store) -> None:
    with store.transaction() as tx:
        run = new_run(tx, detail={"requested_at": "x"})
    statements: list[str] = []

    def executed(*args: Any) -> None:
        statements.append(str(args[2]).split()[0].upper())  # (conn, cursor, statement, ...)

    event.listen(store.engine, "before_cursor_execute", executed)
    try:
        with store.transaction() as tx:
            started = tx.runs.update_run_steps(
                run.id,
                at=at(1),
                steps=[RunStep("started", "running", started_at=at(1), detail={"pid": 7})],
                known=run,
            )
            ended = tx.runs.update_run_steps(
                run.id,
                at=at(2),
                steps=[RunStep("ended", "succeeded", exit_code=0, ended_at=at(2))],
                known=started,
            )
    finally:
        event.remove(store.engine, "before_cursor_execute", executed)
    assert "SELECT" not in statements, "nothing is read back"
    assert store.runs.run(run.id) == ended
    assert (ended.status, ended.exit_code, ended.started_at, ended.ended_at) == (
        "succeeded",
        0,
        at(1),
        at(2),
    )
    assert ended.detail == {"requested_at": "x", "pid": 7}
    assert [e.type for e in store.runs.events(run.id)] == ["created", "started", "ended"]


def test_a_known_run_that_ended_meanwhile_is_refused_as_usual(store: Store) -> None:
    with store.transaction() as tx:
        run = new_run(tx, status="running")
        tx.runs.update_run(run.id, at=at(1), event="ended", status="lost", reason="vanished")
    stale = [RunStep("ended", "succeeded", exit_code=0, ended_at=at(2))]
    with pytest.raises(RunAlreadyEnded, match="lost"), store.transaction() as tx:
        tx.runs.update_run_steps(run.id, at=at(2), steps=stale, known=run)
    final = store.runs.run(run.id)
    assert final is not None
    assert (final.status, final.exit_code) == ("lost", None)
    assert [e.type for e in store.runs.events(run.id)] == ["created", "ended"]
    # What is not an outcome can still be added, and is read first, known or not.
    with store.transaction() as tx:
        later = tx.runs.update_run_steps(
            run.id, at=at(3), steps=[RunStep("measured", detail={"peak": 7})], known=run
        )
    assert later == store.runs.run(run.id)
    assert later.status == "lost"
    assert later.detail == {"peak": 7}
    gone = dataclasses.replace(run, id=run.id + 1000, status="running")
    with store.transaction() as tx, pytest.raises(NotFound):
        tx.runs.update_run_steps(gone.id, at=at(4), steps=[RunStep("ended", "failed")], known=gone)


def test_events_appended_to_runs_held_by_the_caller(store: Store) -> None:
    with store.transaction() as tx:
        first, second = new_run(tx), new_run(tx, job="other")
        tx.runs.append_events([first.id, second.id], at=at(1), type="waiting", detail={"for": "x"})
        tx.runs.append_events([], at=at(1), type="waiting", detail={})
    for run in (first, second):
        events = store.runs.events(run.id)
        assert [(e.type, e.detail, e.at) for e in events[1:]] == [("waiting", {"for": "x"}, at(1))]

    # A run that does not exist is refused by the database, with the whole unit of work.
    def append_to_a_missing_run() -> None:
        with store.transaction() as tx:
            third = new_run(tx, job="third")
            tx.runs.append_events([third.id + 1000], at=at(2), type="waiting", detail={})

    with pytest.raises(IntegrityError):
        append_to_a_missing_run()
    assert store.runs.runs(job="third") == []


def test_concurrent_completions_record_one_outcome(store: Store) -> None:
    with store.transaction() as tx:
        run = new_run(tx, status="running")

    def complete(index: int) -> str:
        status: RunStatus = "succeeded" if index % 2 else "lost"
        with store.transaction() as tx:
            return tx.runs.update_run(run.id, at=at(1), event="ended", status=status).status

    outcomes = in_threads(4, complete)
    winners = [o for o in outcomes if isinstance(o, str)]
    assert len(winners) == 1
    assert all(isinstance(o, RunAlreadyEnded) for o in outcomes if o not in winners)
    final = store.runs.run(run.id)
    assert final is not None
    assert final.status == winners[0]
    assert [e.type for e in store.runs.events(run.id)] == ["created", "ended"]


def test_naive_times_are_refused(store: Store) -> None:
    naive = datetime(2024, 3, 10, 9, 0)
    with store.transaction() as tx:
        with pytest.raises(ValueError, match="created_at must be timezone-aware"):
            new_run(tx, created_at=naive)
        with pytest.raises(ValueError, match="nominal must be timezone-aware"):
            claim(tx, naive)
        run = new_run(tx)
        with pytest.raises(ValueError, match="timezone-aware"):
            tx.runs.update_run(run.id, at=at(1), event="started", started_at=naive)
    assert store.runs.events(run.id)[-1].type == "created"


# -- listings --------------------------------------------------------------------------


@pytest.fixture
def history(store: Store) -> list[Run]:
    """Eight runs of three jobs, created one minute apart, in creation order."""
    specs: list[dict[str, Any]] = [
        {"job": "ranking", "status": "succeeded"},
        {"job": "ranking", "status": "failed", "trigger": "manual"},
        {"job": "feed-indexer", "kind": "worker", "status": "running", "host": "h1"},
        {"job": "breaking-push", "kind": "command", "trigger": "chatops", "status": "running"},
        {"job": "ranking", "status": "skipped", "reason": "overlap"},
        {"job": "feed-indexer", "kind": "worker", "status": "running", "host": "h2"},
        {"job": "ranking", "status": "pending", "trigger": "retry", "host": "h1"},
        {"job": "ranking", "status": "running", "trigger": "catchup", "host": "h1"},
    ]
    with store.transaction() as tx:
        return [new_run(tx, created_at=at(i), **spec) for i, spec in enumerate(specs)]


def ids(found: list[Run]) -> list[int]:
    return [run.id for run in found]


def test_runs_are_listed_newest_first_with_filters(store: Store, history: list[Run]) -> None:
    newest_first = list(reversed(history))
    assert store.runs.runs() == newest_first
    assert ids(store.runs.runs(job="ranking")) == ids(
        [r for r in newest_first if r.job == "ranking"]
    )
    assert ids(store.runs.runs(kind="worker")) == [history[5].id, history[2].id]
    assert ids(store.runs.runs(status="running")) == ids(
        [history[7], history[5], history[3], history[2]]
    )
    assert ids(store.runs.runs(trigger="manual")) == [history[1].id]
    assert ids(store.runs.runs(job="ranking", status="running")) == [history[7].id]
    assert ids(store.runs.runs(since=at(3), until=at(5))) == [history[4].id, history[3].id]
    assert ids(store.runs.runs(since=at(6).astimezone(TOKYO))) == [history[7].id, history[6].id]
    assert ids(store.runs.runs(until=at(1))) == [history[0].id]
    assert store.runs.runs(job="nothing") == []
    assert store.runs.runs(status="lost") == []
    with store.reading() as tx:
        assert tx.runs.runs(kind="command") == [history[3]]


def test_runs_are_paginated(store: Store, history: list[Run]) -> None:
    newest_first = list(reversed(history))
    assert store.runs.runs(limit=3) == newest_first[:3]
    assert store.runs.runs(limit=3, offset=3) == newest_first[3:6]
    assert store.runs.runs(limit=3, offset=6) == newest_first[6:]
    assert store.runs.runs(limit=3, offset=9) == []
    assert ids(store.runs.runs(job="ranking", limit=2, offset=1)) == [history[6].id, history[4].id]


def test_runs_created_at_the_same_instant_keep_a_stable_order(store: Store) -> None:
    with store.transaction() as tx:
        same = [new_run(tx, job=f"j{i}") for i in range(3)]
    assert ids(store.runs.runs()) == ids(list(reversed(same)))
    assert ids(store.runs.active_runs()) == ids(same)


def test_active_runs_are_the_pending_and_running_ones_oldest_first(
    store: Store, history: list[Run]
) -> None:
    active = [history[i] for i in (2, 3, 5, 6, 7)]
    assert store.runs.active_runs() == active
    assert store.runs.active_runs(job="ranking") == [history[6], history[7]]
    assert store.runs.active_runs(kind="worker") == [history[2], history[5]]
    assert store.runs.active_runs(kind="command") == [history[3]]
    assert store.runs.active_runs(host="h1") == [history[2], history[6], history[7]]
    assert store.runs.active_runs(job="feed-indexer", kind="worker", host="h2") == [history[5]]
    assert store.runs.active_runs(job="ranking", kind="worker") == []
    with store.transaction() as tx:
        tx.runs.update_run(history[6].id, at=at(9), event="ended", status="cancelled")
        assert tx.runs.active_runs(job="ranking") == [history[7]]
    assert store.runs.active_runs(job="ranking") == [history[7]]


def test_last_runs_are_the_newest_run_of_each_job(store: Store, history: list[Run]) -> None:
    assert store.runs.last_runs() == {
        "ranking": history[7],
        "feed-indexer": history[5],
        "breaking-push": history[3],
    }
    assert store.runs.last_runs(["ranking", "breaking-push", "never-ran"]) == {
        "ranking": history[7],
        "breaking-push": history[3],
    }
    assert store.runs.last_runs([]) == {}
    with store.transaction() as tx:
        newest = new_run(tx, job="breaking-push", kind="command", created_at=at(30))
        assert tx.runs.last_runs(["breaking-push"]) == {"breaking-push": newest}


def test_listings_of_an_empty_store(store: Store) -> None:
    assert store.runs.runs() == []
    assert store.runs.active_runs() == []
    assert store.runs.last_runs() == {}
    assert store.runs.events(1) == []
    assert store.runs.run(1) is None


# -- schema ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a database that nothing has migrated yet, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'jobdeck.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def test_a_foundation_database_is_upgraded_with_its_revisions(empty_store_url: str) -> None:
    engine = create_store_engine(store_url(empty_store_url, "."))
    try:
        upgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        with Store(engine).transaction() as tx:
            old = tx.revisions.add_revision(
                applied_at=T0,
                applied_by="alice",
                catalog_sha256="a" * 64,
                git_describe="v1.0",
                source="jobdeck.yaml",
                text="version: 1\nproject: newsroom\n",
                catalog={"version": 1, "project": "newsroom"},
            )
    finally:
        engine.dispose()

    with open_store(empty_store_url) as store:
        assert current_revision(store.engine) == head_revision()
        assert store.revisions.revision(1) == old
        assert store.revisions.latest_revision() == old
        with store.transaction() as tx:
            assert claim(tx, T0)
            run = new_run(tx, revision=old.number)
        assert store.runs.runs() == [run]


def test_the_runs_migration_can_be_undone_and_redone(store: Store) -> None:
    with store.transaction() as tx:
        new_run(tx)
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0001")
    assert current_revision(store.engine) == "0001"
    upgrade(store.engine)
    assert current_revision(store.engine) == head_revision()
    assert store.runs.runs() == []


def test_migrating_logs_nothing_at_info(
    empty_store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with open_store(empty_store_url) as store:
        assert current_revision(store.engine) == head_revision()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
