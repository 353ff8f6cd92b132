"""The contract of concurrency keys in the runs aggregate: claims, order, release."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from jobdeck.store import DataStore, Run, open_store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def create(store: DataStore, job: str, kind: str = "schedule") -> Run:
    with store.transaction() as tx:
        return tx.runs.create_run(
            job=job,
            kind=kind,  # type: ignore[arg-type]
            trigger="schedule",
            status="pending",
            created_at=T0,
        )


def claim(store: DataStore, run: Run, key: str = "db", limit: int = 1, minute: int = 0) -> bool:
    with store.transaction() as tx:
        return tx.runs.claim_concurrency(run.id, key, limit, at=T0 + timedelta(minutes=minute))


def end(store: DataStore, run: Run, status: str = "succeeded") -> None:
    with store.transaction() as tx:
        tx.runs.update_run(
            run.id,
            at=T0,
            event=status,
            status=status,  # type: ignore[arg-type]
            ended_at=T0,
        )


def test_one_holder_the_others_wait_in_order_with_their_reason(any_store: DataStore) -> None:
    first, second, third = (
        create(any_store, "nightly"),
        create(any_store, "vacuum", "command"),
        (create(any_store, "nightly")),
    )
    assert claim(any_store, first)
    assert not claim(any_store, third, minute=1)
    assert not claim(any_store, second, minute=2)
    assert claim(any_store, first), "a holder that asks again still holds"
    [use] = any_store.runs.concurrency_keys()
    assert (use.key, use.limit) == ("db", 1)
    assert [(h.run_id, h.job, h.since) for h in use.holders] == [(first.id, "nightly", T0)]
    assert [(w.run_id, w.kind) for w in use.waiters] == [
        (second.id, "command"),
        (third.id, "schedule"),
    ]
    assert use.waiters[1].since == T0 + timedelta(minutes=1)
    waiting = any_store.runs.run(second.id)
    assert waiting is not None
    assert (waiting.status, waiting.reason) == ("pending", "concurrency")
    assert any_store.runs.concurrency_key_of(third.id) == "db"
    assert any_store.runs.concurrency_key_of(create(any_store, "other").id) is None

    end(any_store, first, "failed")  # any end releases the key
    assert not claim(any_store, third, minute=3), "the older waiter goes first"
    assert claim(any_store, second, minute=4)
    started = any_store.runs.run(second.id)
    assert started is not None
    assert started.reason is None
    [use] = any_store.runs.concurrency_keys(["db"])
    assert [h.run_id for h in use.holders] == [second.id]
    assert [w.run_id for w in use.waiters] == [third.id]
    assert any_store.runs.concurrency_keys(["other"]) == []


def test_a_limit_lets_that_many_hold_across_items_and_keys_are_apart(any_store: DataStore) -> None:
    runs = [create(any_store, f"job-{i}") for i in range(4)]
    assert [claim(any_store, run, limit=2) for run in runs] == [True, True, False, False]
    lone = create(any_store, "lone")
    assert claim(any_store, lone, key="reports", limit=1)
    end(any_store, runs[1], "cancelled")
    assert [claim(any_store, run, limit=2) for run in runs[2:]] == [True, False]
    uses = {use.key: use for use in any_store.runs.concurrency_keys()}
    assert [h.run_id for h in uses["db"].holders] == [runs[0].id, runs[2].id]
    assert [w.run_id for w in uses["db"].waiters] == [runs[3].id]
    assert [h.run_id for h in uses["reports"].holders] == [lone.id]


def test_an_ended_waiter_gives_its_place_and_an_ended_run_never_holds(any_store: DataStore) -> None:
    holder, older, newer = (create(any_store, name) for name in ("a", "b", "c"))
    assert claim(any_store, holder)
    assert not claim(any_store, older)
    assert not claim(any_store, newer)
    end(any_store, older, "timed_out")  # a waiter that timed out
    end(any_store, holder)
    assert claim(any_store, newer)
    assert not claim(any_store, older), "an ended run never holds a key"
    [use] = any_store.runs.concurrency_keys()
    assert [h.run_id for h in use.holders] == [newer.id]
    assert use.waiters == ()


def test_a_waiter_follows_its_items_new_key_and_a_holder_keeps_its_own(
    any_store: DataStore,
) -> None:
    """A new revision may name another key: a waiter asks for the new one, a holder
    keeps the one it got (and holds it when it asks again, as after a restart)."""
    holder, waiter = create(any_store, "a"), create(any_store, "b")
    assert claim(any_store, holder)
    assert not claim(any_store, waiter)
    assert claim(any_store, waiter, key="reports")
    assert claim(any_store, holder, key="reports")
    uses = {use.key: use for use in any_store.runs.concurrency_keys()}
    assert [h.run_id for h in uses["db"].holders] == [holder.id]
    assert [h.run_id for h in uses["reports"].holders] == [waiter.id]
    assert uses["db"].waiters == uses["reports"].waiters == ()


@pytest.mark.postgres
def test_claims_from_many_connections_never_exceed_the_limit(pg_url: str) -> None:
    """Eight threads, each with a store (connections) of its own, claim one key with
    limit 2 for 40 runs, holding it a moment: at no time do more than 2 hold it, and
    every run gets it in the end."""
    limit, threads = 2, 8
    setup = open_store(pg_url)
    runs = [create(setup, f"job-{i}") for i in range(40)]
    lock = threading.Lock()
    holding = [0]
    most = [0]
    errors: list[BaseException] = []

    # Opened in turn: opening migrates, which is not meant to run from threads at once.
    stores = [open_store(pg_url) for _ in range(threads)]

    def work(store: DataStore, mine: list[Run]) -> None:
        try:
            pending = list(mine)
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                run = pending[0]
                if not claim(store, run, limit=limit):
                    time.sleep(0.005)
                    continue
                with lock:
                    holding[0] += 1
                    most[0] = max(most[0], holding[0])
                time.sleep(random.uniform(0.001, 0.01))
                with store.transaction() as tx:
                    with lock:
                        holding[0] -= 1  # before the end commits: the key is still held
                    tx.runs.update_run(
                        run.id, at=T0, event="succeeded", status="succeeded", ended_at=T0
                    )
                pending.pop(0)
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    workers = [
        threading.Thread(target=work, args=(stores[i], runs[i::threads])) for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(90)
    assert not errors, errors
    assert most[0] == limit, f"at most {most[0]} held the key at once"
    done = [setup.runs.run(run.id) for run in runs]
    assert all(run is not None and run.status == "succeeded" for run in done)
    assert setup.runs.concurrency_keys() == []
    for store in [setup, *stores]:
        store.close()
