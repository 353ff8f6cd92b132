"""The notices outbox at the engine: a due notice is sent by the sweep of the engine that
leads, once while in flight; a failed send backs off; one 24 h old is given up (a fake
clock, the memory store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobdeck.clock import FakeClock
from jobdeck.outbox import Outbox
from jobdeck.store import Notice, Run
from jobdeck.store.memory import MemoryStore
from jobdeck.workflow.outbox import (
    FIRST_RETRY,
    GIVE_UP_AFTER,
    LAST_RETRY,
    due_fields,
    notice_id_of,
    retry_delay,
    run_of,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def record(store: MemoryStore, run: Run, at: datetime) -> Notice:
    with store.transaction() as tx:
        return tx.notices.record_notice(
            Notice(
                at=at,
                job=run.job,
                kind="schedule",
                event="run.failed",
                stream="failure",
                sent=True,
                why="failure 1 in a row",
                run_id=run.id,
                streak=1,
                targets=["webhook:https://hooks.example/x"],
                **due_fields(run, "boom", at),
            )
        )


def test_the_message_gives_back_the_run_and_its_tail() -> None:
    run = Run(7, "backup", "schedule", "schedule", "failed", T0, started_at=T0, exit_code=3)
    assert run_of(due_fields(run, "boom", T0)["message"]) == (run, "boom")
    assert run_of({"run": {"nonsense": 1}}) is None


def test_retries_back_off_to_an_hour() -> None:
    assert retry_delay(1) == FIRST_RETRY
    assert retry_delay(2) == 2 * FIRST_RETRY
    assert retry_delay(50) == LAST_RETRY


def test_a_due_notice_is_sent_by_the_leader_retried_with_backoff_and_given_up() -> None:
    store = MemoryStore()
    clock = FakeClock(T0)
    sent: list[tuple[list[str], Run, str]] = []
    leads = [False]
    outbox = Outbox(store, clock, lambda t, r, tail: sent.append((t, r, tail)), lambda: leads[0])
    run = Run(7, "backup", "schedule", "schedule", "failed", T0, exit_code=3)
    notice = record(store, run, T0)
    assert notice.id is not None

    clock.advance(timedelta(minutes=1))  # past the claim of the engine that decided it
    assert outbox.sweep() == 0  # only the leader sends again
    leads[0] = True
    assert outbox.sweep() == 1
    [(targets, told, tail)] = sent
    assert (targets, told.id, tail, notice_id_of(told)) == (
        ["webhook:https://hooks.example/x"],
        7,
        "boom",
        notice.id,
    )
    # Nothing took it (no notifier): the next sweep tries again.
    assert outbox.sweep() == 1
    done = outbox.sending(notice.id)
    assert done is not None
    assert outbox.sending(notice.id) is None  # in flight: not twice from this engine
    assert outbox.sweep() == 0
    done(False)
    [back] = store.notices.notices()
    assert (back.delivery, back.attempts) == ("due", 1)
    assert back.next_try_at == clock.now() + FIRST_RETRY
    assert outbox.sweep() == 0  # backing off
    clock.advance(FIRST_RETRY)
    assert outbox.sweep() == 1

    clock.set(T0 + GIVE_UP_AFTER)
    assert outbox.sweep() == 0
    [gone] = store.notices.notices()
    assert gone.delivery == "given_up"


def test_a_delivered_notice_is_not_sent_again() -> None:
    store = MemoryStore()
    clock = FakeClock(T0)
    outbox = Outbox(store, clock, lambda t, r, tail: None, lambda: True)
    notice = record(store, Run(7, "backup", "schedule", "schedule", "failed", T0), T0)
    assert notice.id is not None
    done = outbox.sending(notice.id)
    assert done is not None
    clock.advance(timedelta(seconds=2))
    done(True)
    [back] = store.notices.notices()
    assert (back.delivery, back.attempts, back.delivered_at) == ("delivered", 1, clock.now())
    clock.advance(timedelta(hours=1))
    assert outbox.sweep() == 0
