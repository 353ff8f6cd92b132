"""Monitors through the real driver and a real store: pings recorded as runs, slots with
no ping recorded missed, starts with no end timed out, and what is notified, by a fake
clock (the decisions are taken at the times the test gives)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobdeck.clock import FakeClock
from jobdeck.workflow.monitors import MAX_BODY
from tests.integration.test_workflow_harness import T0, Decks, until

pytestmark = pytest.mark.anyio

CATALOG = """
    version: 1
    project: watch
    monitors:
      backup:
        rate: 1h
        grace: 10m
        timeout: 1h
        notify: ["slack:#ops"]
        notify_policy: {recovery: true}
    """


def at(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


async def test_missed_met_timed_out_and_zero_duration(decks: Decks) -> None:
    clock = FakeClock(T0 - at(30))  # first sight at 09:30; slots on the hour
    deck = decks(CATALOG, clock=clock)
    watch = deck.driver.monitors
    watch.check(clock.now())

    # 10:00 passes with no ping: recorded missed once its grace has passed, not before.
    watch.check(T0 + at(9))
    assert deck.runs("backup") == []
    clock.set(T0 + at(10))
    watch.check(clock.now())
    watch.check(clock.now())  # decided once
    (missed,) = deck.runs("backup")
    assert (missed.kind, missed.status, missed.reason, missed.scheduled_for) == (
        "monitor",
        "skipped",
        "missed",
        T0,
    )
    assert missed.detail["missed"]["slots"] == [{"at": "2026-03-08T10:00:00Z", "reason": "no_ping"}]
    watch.flush()
    assert [(n.run.id, n.run.detail["notice"]["event"]) for n in deck.notices] == [
        (missed.id, "run.missed")
    ]

    # 11:00: a start a minute early, its end five minutes later: the slot is met, and the
    # success ends the failure streak with a recovery notice.
    clock.set(T0 + at(59.5))
    started = watch.ping("backup", "start", None, b"", clock.now())
    assert started is not None
    assert started.status == "running"
    clock.set(T0 + at(65))
    ended = watch.ping("backup", "success", 0, b"backed up\n", clock.now())
    assert ended is not None
    assert ended.id == started.id
    assert (ended.status, ended.exit_code, ended.trigger) == ("succeeded", 0, "ping")
    assert ended.ended_at is not None
    assert ended.started_at is not None
    assert ended.ended_at - ended.started_at == at(5.5)
    assert deck.log(ended.id) == "backed up\n"
    clock.set(T0 + at(70))
    watch.check(clock.now())
    assert len(deck.runs("backup")) == 2
    watch.flush()
    assert [n.run.detail["notice"]["event"] for n in deck.notices] == [
        "run.missed",
        "run.recovered",
    ]

    # 12:00: a start, then nothing: timed out an hour later, notified.
    clock.set(T0 + at(120))
    hung = watch.ping("backup", "start", None, b"", clock.now())
    assert hung is not None
    clock.set(T0 + at(179))
    watch.check(clock.now())
    assert deck.run(hung.id).status == "running"
    clock.set(T0 + at(180))
    watch.check(clock.now())
    assert (deck.run(hung.id).status, deck.run(hung.id).reason) == ("timed_out", "timeout")
    watch.flush()
    assert deck.notices[-1].run.id == hung.id
    assert deck.notices[-1].run.detail["notice"]["event"] == "run.timed_out"

    # An end with no start: a run of zero duration; a failure with its exit code.
    clock.set(T0 + at(241))
    lone = watch.ping("backup", "fail", 4, b"x" * (MAX_BODY + 100), clock.now())
    assert lone is not None
    assert (lone.status, lone.exit_code, lone.started_at, lone.ended_at) == (
        "failed",
        4,
        clock.now(),
        clock.now(),
    )
    kept = deck.log(lone.id)
    assert kept.startswith("x" * MAX_BODY)
    assert "longer than 10 KiB" in kept
    assert kept.count("x") == MAX_BODY
    assert watch.ping("nothing", "start", None, b"", clock.now()) is None


ALERTS = """
    version: 1
    project: watch
    monitors:
      backup:
        cron: "0 0 1 1 *"
        timeout: 1h
        notify: ["slack:#ops"]
        alerts: {slow: 20m, fast: 5m}
    """


async def test_duration_alerts_apply_to_monitor_runs(decks: Decks) -> None:
    clock = FakeClock(T0)
    deck = decks(ALERTS, clock=clock)
    watch = deck.driver.monitors

    # A success in 2 minutes, under alerts.fast: run.fast.
    watch.ping("backup", "start", None, b"", clock.now())
    clock.advance(at(2))
    quick = watch.ping("backup", "success", None, b"", clock.now())
    assert quick is not None
    watch.flush()
    assert [(n.run.id, n.run.detail["notice"]["event"]) for n in deck.notices] == [
        (quick.id, "run.fast")
    ]
    assert deck.notices[0].run.detail["alert"]["threshold"] == "5m"

    # Still running after 20 minutes: run.slow, once, before the timeout.
    slow = watch.ping("backup", "start", None, b"", clock.now())
    assert slow is not None
    clock.advance(at(19))
    watch.check(clock.now())
    assert len(deck.notices) == 1
    clock.advance(at(1))
    watch.check(clock.now())
    clock.advance(at(1))
    watch.check(clock.now())
    assert [n.run.detail["notice"]["event"] for n in deck.notices] == ["run.fast", "run.slow"]
    assert deck.notices[-1].run.id == slow.id
    held = deck.store.notices.notices(job="backup", kind="monitor")
    assert {n.event for n in held} == {"run.fast", "run.slow"}


async def test_slots_missed_at_once_are_recorded_each_and_told_in_one_notice(
    decks: Decks,
) -> None:
    clock = FakeClock(T0 - at(30))
    deck = decks(CATALOG, clock=clock)
    watch = deck.driver.monitors
    watch.check(clock.now())
    clock.set(T0 + at(185))  # 10:00, 11:00 and 12:00 passed unseen (13:00 not yet due)
    watch.check(clock.now())
    runs = deck.runs("backup")
    assert [(r.status, r.reason, r.scheduled_for) for r in runs] == [
        ("skipped", "missed", T0 + at(minutes)) for minutes in (0, 60, 120)
    ]
    watch.flush()
    (notice,) = deck.notices
    assert notice.run.id == runs[-1].id
    missed = notice.run.detail["missed"]
    assert (missed["count"], missed["first"], missed["last"]) == (
        3,
        "2026-03-08T10:00:00Z",
        "2026-03-08T12:00:00Z",
    )
    # The notices' audit holds one failure notice; the runs each say their own slot.
    assert runs[0].detail["missed"]["count"] == 1
    assert len(deck.store.notices.notices(job="backup")) == 1


async def test_a_schedule_migrated_from_a_monitor_learns_auto_from_its_runs(
    decks: Decks,
) -> None:
    deck = decks(
        """
        version: 1
        project: watch
        schedules:
          backup:
            rate: 1h
            shell: "true"
            notify: ["slack:#ops"]
            alerts: {fast: auto}
        """
    )
    with deck.store.transaction() as tx:  # what the monitor recorded before the migration
        for day in range(5):
            began = T0 - timedelta(days=5 - day)
            run = tx.runs.create_run(
                job="backup", kind="monitor", trigger="ping", status="pending", created_at=began
            )
            tx.runs.update_run(
                run.id, at=began, event="started", status="running", started_at=began
            )
            tx.runs.update_run(
                run.id,
                at=began + at(40),
                event="ended",
                status="succeeded",
                ended_at=began + at(40),
            )
    fired = deck.driver.fire("backup", T0)
    assert fired is not None
    ended = await deck.wait_ended(fired.id)
    assert ended.status == "succeeded"
    await until(lambda: bool(deck.notices), "the fast notice")
    alert = deck.notices[0].run.detail["alert"]
    assert (deck.notices[0].run.detail["notice"]["event"], alert["source"]) == ("run.fast", "auto")
    assert alert["threshold"] == "10m"  # a quarter of the monitor's 40m median


async def test_only_the_leader_decides_missed_slots_and_timeouts(decks: Decks) -> None:
    """In a cluster every node takes pings, but slots and timeouts are the leader's: a
    standby decides nothing (and forgets what it read), a replaced leader's decision is
    refused by its fence, and the node that leads next decides each slot once."""
    from jobdeck.store import Tx
    from jobdeck.store.errors import Fenced

    clock = FakeClock(T0 - at(30))
    deck = decks(CATALOG, clock=clock)
    watch = deck.driver.monitors
    leading = False
    watch.leads = lambda: leading
    watch.check(clock.now())
    hung = watch.ping("backup", "start", None, b"", T0 - at(61))  # a standby takes pings
    assert hung is not None

    clock.set(T0 + at(15))  # 10:00 missed, and the start is past its timeout
    watch.check(clock.now())
    assert [(r.id, r.status) for r in deck.runs("backup")] == [(hung.id, "running")]

    def replaced(tx: Tx, now: object) -> None:
        raise Fenced("node-a", 3, "a newer leader holds token 4")

    leading = True
    watch.fence = replaced  # it believes it leads, but the store knows better
    watch.check(clock.now())
    assert [(r.id, r.status) for r in deck.runs("backup")] == [(hung.id, "running")]

    watch.fence = None
    watch.check(clock.now())
    watch.check(clock.now())
    runs = {r.id: r for r in deck.runs("backup")}
    assert runs[hung.id].status == "timed_out"
    (missed,) = [r for r in runs.values() if r.id != hung.id]
    assert (missed.status, missed.reason, missed.scheduled_for) == ("skipped", "missed", T0)


async def test_a_suspended_monitor_records_its_slots_suspended_and_tells_nothing(
    decks: Decks,
) -> None:
    clock = FakeClock(T0 - at(30))  # first sight at 09:30; slots on the hour
    deck = decks(CATALOG, clock=clock)
    watch = deck.driver.monitors
    watch.check(clock.now())
    with deck.store.transaction() as tx:
        held = tx.suspensions.add_suspension(
            kind="monitor",
            name="backup",
            reason="the box is moved",
            created_by="alice",
            created_at=T0 - at(20),
            until=None,
        )

    # 10:00 and 11:00 pass with no ping while it is suspended: suspended, not missed.
    clock.set(T0 + at(70))
    watch.check(clock.now())
    # A ping still counts while suspended: a failed run is recorded, not notified.
    clock.set(T0 + at(75))
    failed = watch.ping("backup", "fail", 2, b"disk full\n", clock.now())
    assert failed is not None
    assert failed.status == "failed"
    watch.flush()
    runs = sorted(deck.runs("backup"), key=lambda r: r.id)
    assert [(r.status, r.reason, r.scheduled_for) for r in runs] == [
        ("skipped", "suspended", T0),
        ("skipped", "suspended", T0 + at(60)),
        ("failed", "exit_code", None),
    ]
    assert deck.notices == []
    assert deck.store.notices.notices(job="backup") == []

    # Resumed at 12:05, inside the 12:00 slot's grace: that slot's window overlapped the
    # suspension, so it is not missed either; nothing is told about the time suspended.
    clock.set(T0 + at(125))
    with deck.store.transaction() as tx:
        tx.suspensions.end_suspension(held.id, ended_by="alice", ended_at=clock.now())
    clock.set(T0 + at(135))
    watch.check(clock.now())
    watch.flush()
    assert [r.reason for r in deck.runs("backup") if r.scheduled_for == T0 + at(120)] == [
        "suspended"
    ]
    assert deck.notices == []

    # The first slot after the resume with no ping is missed and told.
    clock.set(T0 + at(190))
    watch.check(clock.now())
    watch.flush()
    missed = [r for r in deck.runs("backup") if r.scheduled_for == T0 + at(180)]
    assert [(r.status, r.reason) for r in missed] == [("skipped", "missed")]
    assert [n.run.detail["notice"]["event"] for n in deck.notices] == ["run.missed"]
    assert deck.notices[0].run.detail["missed"]["count"] == 1
