"""Timed fires through the driver: one decision per slot across engines, suspended and
disabled schedules, and missed slots recorded."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from jobdeck.store import Tx
from jobdeck.store.records import AuditEntry, Run
from jobdeck.workflow.decisions import CatchupDecision
from jobdeck.workflow.driver import Applied, RunRefused
from tests.integration.test_workflow_harness import HOST, T0, Decks

pytestmark = pytest.mark.anyio


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


CATALOG = """
    version: 1
    project: fires
    schedules:
      tick:
        rate: 10m
        command: JOB]
        notify: ["slack:#alerts"]
      off:
        rate: 10m
        command: JOB]
        enabled: false
    """


async def test_a_slot_is_decided_once_even_by_two_engines_on_one_store(decks: Decks) -> None:
    one = decks(CATALOG)
    other = decks(CATALOG)
    run = one.driver.fire("tick", T0)
    assert run is not None
    assert other.driver.fire("tick", T0) is None
    assert one.driver.fire("tick", T0) is None
    assert (await one.wait_ended(run.id)).status == "succeeded"
    assert [r.id for r in one.runs("tick")] == [run.id]
    assert run.scheduled_for == T0
    assert run.host == HOST
    assert isinstance(run.detail["lateness_ms"], float)
    assert one.store.runs.last_fire("tick") == T0
    await other.close()
    await one.close()


async def test_a_suspended_schedule_records_each_slot_as_skipped(decks: Decks) -> None:
    deck = decks(CATALOG)
    now = deck.driver.clock.now()
    with deck.store.transaction() as tx:
        tx.suspensions.add_suspension(
            kind="schedule",
            name="tick",
            reason="upstream is down",
            created_by="ops",
            created_at=now,
            until=None,
        )
    first = deck.driver.fire("tick", T0)
    second = deck.driver.fire("tick", T0 + timedelta(minutes=10))
    assert first is not None
    assert second is not None
    assert {(r.status, r.reason) for r in (first, second)} == {("skipped", "suspended")}
    assert not deck.started(first.id)
    with pytest.raises(RunRefused, match="schedule tick is suspended: upstream is down"):
        deck.driver.run_now("tick")
    deck.driver.catch_up(
        "tick",
        CatchupDecision(missed=(T0 + timedelta(minutes=20),)),
        trigger="catchup",
        cause="engine_down",
    )
    missed = deck.runs("tick")[-1]
    assert (missed.status, missed.reason, missed.trigger) == ("skipped", "suspended", "catchup")
    assert deck.notices == []  # a suspension is on purpose: nothing to tell
    await deck.close()


async def test_a_disabled_schedule_fires_nothing_and_refuses_manual_runs(decks: Decks) -> None:
    deck = decks(CATALOG)
    assert deck.driver.fire("off", T0) is None
    with pytest.raises(RunRefused, match="disabled"):
        deck.driver.run_now("off")
    with pytest.raises(RunRefused, match="no schedule named 'gone'"):
        deck.driver.run_now("gone")
    assert deck.runs("off") == []
    await deck.close()


async def test_missed_slots_are_recorded_claimed_and_notified_in_one_notice(
    decks: Decks,
) -> None:
    deck = decks(CATALOG)
    slots = [T0 + timedelta(minutes=m) for m in (10, 20)]
    caught = T0 + timedelta(minutes=30)
    decision = CatchupDecision(
        run=(caught,),
        missed=tuple(slots),
        missed_beyond=5,
        first_beyond=T0 - timedelta(hours=1),
        last_beyond=T0 - timedelta(minutes=20),
    )
    deck.driver.catch_up("tick", decision, trigger="catchup", cause="engine_down")
    runs = deck.runs("tick")
    skipped = [r for r in runs if r.status == "skipped"]
    assert [(r.status, r.reason, r.trigger) for r in skipped] == [
        ("skipped", "missed", "catchup")
    ] * 3
    assert [r.scheduled_for for r in skipped] == [*slots, None]
    assert skipped[0].detail == {"cause": "engine_down", "why": "outside_window"}
    assert skipped[-1].detail["missed_slots"] == 5
    ran = [r for r in runs if r.status != "skipped"]
    assert [(r.scheduled_for, r.trigger) for r in ran] == [(caught, "catchup")]
    assert (await deck.wait_ended(ran[0].id)).status == "succeeded"
    # The recorded slots are taken: a late fire of one of them decides nothing.
    assert deck.driver.fire("tick", slots[0]) is None
    # One notice for the whole catch-up, standing on a real run (its link opens it).
    assert len(deck.notices) == 1
    notice = deck.notices[0]
    assert notice.targets == ["slack:#alerts"]
    assert (notice.run.id, notice.run.reason) == (skipped[0].id, "missed")
    assert notice.run.id != 0
    assert notice.run.detail["missed"] == {
        "schedule": "tick",
        "cause": "engine_down",
        "count": 7,
        "first": z(T0 - timedelta(hours=1)),
        "last": z(slots[-1]),
        "slots": [{"at": z(slot), "reason": "outside_window"} for slot in slots],
        "slots_listed": 2,
        "reasons": {"outside_window": 7},
        "catchup": "latest",
        "catchup_window": "1h",
        "caught_up": [z(caught)],
    }
    # Recorded with the other notices (the notify policy never holds these back).
    [recorded] = deck.store.notices.notices(job="tick")
    assert (recorded.event, recorded.sent, recorded.run_id) == ("run.missed", True, skipped[0].id)
    assert recorded.why == "missed 7 slots (engine_down); not counted by notify_policy"
    await deck.close()


async def test_a_reload_drops_waiting_runs_of_removed_jobs_and_applies_new_pool_limits(
    decks: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    text = f"""
        version: 1
        project: fires
        pools:
          narrow: {{max_concurrency: LIMIT}}
        schedules:
          keep:
            rate: 10m
            pool: narrow
            overlap: allow
            command: JOB, "--hold", "{gate}"]
          drop:
            rate: 10m
            pool: narrow
            command: JOB]
        """
    deck = decks(text.replace("LIMIT", "1"))
    running = deck.driver.run_now("keep")
    await deck.wait_running(running.id)
    queued = deck.driver.run_now("keep")
    dropped = deck.driver.run_now("drop")
    assert {queued.id, dropped.id} <= set(deck.driver.runs.waiting)
    wider = deck.parse(text.replace("LIMIT", "2"))
    without_drop = wider.model_copy(update={"schedules": {"keep": wider.schedules["keep"]}})
    deck.driver.load(Applied(2, without_drop, tmp_path))
    gone = await deck.wait_ended(dropped.id)
    assert (gone.status, gone.reason) == ("cancelled", "removed")
    await deck.wait_running(queued.id)  # room in the pool now: two at once
    assert deck.run(running.id).status == "running"
    gate.touch()
    for run in (running, queued):
        done = await deck.wait_ended(run.id)
        assert (done.status, done.revision) == ("succeeded", 1)
    await deck.close()


async def test_a_manual_run_and_its_audit_entry_are_one_transaction(decks: Decks) -> None:
    """What the API records of who asked commits with the run, or neither does."""
    deck = decks(CATALOG)

    def broken(tx: Tx, run: Run) -> None:
        raise RuntimeError("the audit entry could not be written")

    with pytest.raises(RuntimeError, match="audit entry"):
        deck.driver.run_now("tick", requested_by="ops", audit=broken)
    assert deck.runs("tick") == []
    assert deck.driver.runs.waiting == {}

    def audited(tx: Tx, run: Run) -> None:
        entry = AuditEntry(
            at=deck.driver.clock.now(),
            actor="ops",
            via="api",
            action="run",
            target="schedule tick",
            outcome="ok",
            detail={"run_id": run.id},
        )
        tx.audit.record_audit(entry)

    run = deck.driver.run_now("tick", requested_by="ops", audit=audited)
    assert [entry.detail for entry in deck.store.audit.audit()] == [{"run_id": run.id}]
    assert (await deck.wait_ended(run.id)).status == "succeeded"
    await deck.close()


@pytest.mark.parametrize("overlap", ["skip", "buffer_one", "cancel_other"])
async def test_catchup_all_runs_every_missed_slot_one_after_another(
    decks: Decks, overlap: str
) -> None:
    deck = decks(
        f"""
        version: 1
        project: fires
        schedules:
          minutely:
            cron: "* * * * *"
            command: JOB, "--sleep", "0.3"]
            overlap: {overlap}
            catchup: all
        """
    )
    slots = [T0 + timedelta(minutes=m) for m in range(4)]
    fired = [deck.driver.fire("minutely", slot, "catchup") for slot in slots]
    assert all(run is not None for run in fired)
    ended = [await deck.wait_ended(run.id) for run in fired if run is not None]
    assert [(r.status, r.trigger) for r in ended] == [("succeeded", "catchup")] * 4
    assert [r.scheduled_for for r in ended] == slots
    # Queued behind each other: each started after the one before had ended.
    for before, after in itertools.pairwise(ended):
        start, end = deck.mark(after.id, "start"), deck.mark(before.id, "end")
        assert start is not None
        assert end is not None
        assert start >= end
    await deck.close()


async def test_a_catchup_meets_the_policy_against_a_run_from_before(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(
        """
        version: 1
        project: fires
        schedules:
          minutely:
            cron: "* * * * *"
            command: JOB, "--hold", "GATE"]
            catchup: all
            notify: ["slack:#alerts"]
        """.replace("GATE", str(tmp_path / "gate"))
    )
    before = deck.driver.fire("minutely", T0)
    assert before is not None
    await deck.wait_running(before.id)
    slot = T0 + timedelta(minutes=1)
    deck.driver.catch_up(
        "minutely", CatchupDecision(run=(slot,)), trigger="catchup", cause="timer_restart"
    )
    late = deck.runs("minutely")[-1]
    assert (late.scheduled_for, late.status, late.reason) == (slot, "skipped", "overlap")
    # Skipped by the catch-up: told, with why.
    assert len(deck.notices) == 1
    missed = deck.notices[0].run.detail["missed"]
    assert (missed["count"], missed["cause"], missed["caught_up"]) == (1, "timer_restart", [])
    assert missed["slots"] == [{"at": z(slot), "reason": "overlap"}]
    assert deck.notices[0].run.id == late.id
    (tmp_path / "gate").write_text("")
    assert (await deck.wait_ended(before.id)).status == "succeeded"
    await deck.close()


async def test_slots_overdue_after_a_late_wake_queue_too(decks: Decks) -> None:
    deck = decks(
        """
        version: 1
        project: fires
        schedules:
          minutely:
            cron: "* * * * *"
            command: JOB, "--sleep", "0.2"]
            catchup: all
            catchup_window: 10000d
        """
    )
    slots = tuple(T0 + timedelta(minutes=m) for m in range(3))
    decision = CatchupDecision(run=slots)
    deck.driver.catch_up("minutely", decision, trigger="schedule", cause="engine_late")
    runs = deck.runs("minutely")
    ended = [await deck.wait_ended(run.id) for run in runs]
    assert [(r.scheduled_for, r.trigger, r.status) for r in ended] == [
        (slot, "schedule", "succeeded") for slot in slots
    ]
    assert {r.detail["catchup_of"] for r in ended} == {"engine_late"}
    assert deck.notices == []
    await deck.close()
