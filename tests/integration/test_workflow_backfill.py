"""Backfill, re-runs of a slot and jitter through the real driver, store and shims, on
SQLite and PostgreSQL: one run per slot across engines and restarts, queued behind each
other, each with its slot's time."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobdeck.cadence import jitter_delay
from jobdeck.store import Tx
from jobdeck.workflow.backfill import Backfill, SlotError, backfill
from jobdeck.workflow.driver import RunRefused
from tests.integration.test_workflow_harness import PY, T0, Decks, until

pytestmark = pytest.mark.anyio

SLOTS = [T0 + timedelta(minutes=10 * i) for i in range(4)]


@pytest.fixture
def decks(tmp_path: Path, store_url: str | None) -> Iterator[Decks]:
    """Engines on each backend: SQLite in the state folder, or a fresh PostgreSQL."""
    made = Decks(tmp_path, store_url)
    yield made
    made.cleanup()


def catalog(tmp_path: Path, overlap: str = "skip") -> str:
    return f"""
        version: 1
        project: backfill
        schedules:
          tick:
            rate: 10m
            command: JOB, "--hold", {str(tmp_path / "gate")!r}]
            overlap: {overlap}
          stamp:
            rate: 10m
            # (the harness replaces every J-O-B of the catalog with the test job)
            command: [{PY!r}, "-c", "import os; print(os.environ['J' 'OBDECK_SCHEDULED_FOR'])"]
          spread:
            rate: 1h
            jitter: 3s
            command: JOB]
        """


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def test_one_run_per_slot_oldest_first_queued_behind_each_other(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(catalog(tmp_path))
    audited: list[Backfill] = []

    def audit(tx: Tx, done: Backfill) -> None:
        audited.append(done)

    done = backfill(deck.driver, "tick", SLOTS[0], SLOTS[-1], requested_by="ops", audit=audit)
    assert audited == [done]
    runs = done.runs
    assert [r.scheduled_for for r in runs] == SLOTS
    assert [r.id for r in runs] == sorted(r.id for r in runs)
    assert {(r.trigger, r.status, r.requested_by) for r in runs} == {("backfill", "pending", "ops")}
    # overlap: skip, yet none is skipped for the others of its backfill: they wait.
    await deck.wait_running(runs[0].id)
    await asyncio.sleep(0.3)
    assert [deck.started(r.id) for r in runs] == [True, False, False, False]
    deck.gate().touch()
    ended = [await deck.wait_ended(r.id) for r in runs]
    assert {r.status for r in ended} == {"succeeded"}
    # One at a time, oldest first: each started after the one before ended.
    for before, after in itertools.pairwise(ended):
        assert before.ended_at is not None
        assert after.started_at is not None
        assert after.started_at >= before.ended_at
    # Each slot is claimed by its run: no timed fire, catch-up or backfill runs it again.
    assert deck.driver.fire("tick", SLOTS[1]) is None
    claimed = deck.store.runs.claimed_fires("tick", SLOTS[0], SLOTS[-1])
    assert claimed == {slot: run.id for slot, run in zip(SLOTS, runs, strict=True)}
    await deck.close()


async def test_a_backfilled_run_gets_its_slot_in_jobdeck_scheduled_for(decks: Decks) -> None:
    deck = decks(catalog(Path("/nonexistent")))
    done = backfill(deck.driver, "stamp", SLOTS[1], SLOTS[2])
    for run, slot in zip(done.runs, SLOTS[1:3], strict=True):
        assert (await deck.wait_ended(run.id)).status == "succeeded"
        assert deck.log(run.id) == slot.isoformat() + "\n"
    again = deck.driver.run_now("stamp", slot=SLOTS[0])
    assert again.scheduled_for == SLOTS[0]
    assert (await deck.wait_ended(again.id)).status == "succeeded"
    assert deck.log(again.id) == SLOTS[0].isoformat() + "\n"
    # The re-run claimed the free slot: the scheduler never fires it again.
    assert deck.driver.fire("stamp", SLOTS[0]) is None
    await deck.close()


async def test_slots_with_a_run_are_left_alone_unless_rerun_and_dry_run_changes_nothing(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(catalog(tmp_path, overlap="allow"))
    deck.gate().touch()
    timed = deck.driver.fire("tick", SLOTS[1])
    assert timed is not None
    preview = backfill(deck.driver, "tick", SLOTS[0], SLOTS[2], dry_run=True)
    assert [(s.slot, s.action, s.existing_run) for s in preview.slots] == [
        (SLOTS[0], "run", None),
        (SLOTS[1], "keep", timed.id),
        (SLOTS[2], "run", None),
    ]
    assert preview.runs == []
    assert [r.id for r in deck.runs("tick")] == [timed.id]
    assert deck.store.runs.claimed_fires("tick", SLOTS[0], SLOTS[2]) == {SLOTS[1]: timed.id}

    done = backfill(deck.driver, "tick", SLOTS[0], SLOTS[2])
    assert [(s.action, s.run is not None) for s in done.slots] == [
        ("run", True),
        ("keep", False),
        ("run", True),
    ]
    assert [r.scheduled_for for r in done.runs] == [SLOTS[0], SLOTS[2]]
    # Asked again: every slot has its run now; nothing new.
    assert backfill(deck.driver, "tick", SLOTS[0], SLOTS[2]).runs == []
    rerun = backfill(deck.driver, "tick", SLOTS[0], SLOTS[2], rerun=True)
    assert [(s.action, s.existing_run) for s in rerun.slots] == [
        ("rerun", done.runs[0].id),
        ("rerun", timed.id),
        ("rerun", done.runs[1].id),
    ]
    assert [r.scheduled_for for r in rerun.runs] == SLOTS[:3]
    for run in [timed, *done.runs, *rerun.runs]:
        assert (await deck.wait_ended(run.id)).status == "succeeded"
    # The claims still name the first run of each slot.
    claimed = deck.store.runs.claimed_fires("tick", SLOTS[0], SLOTS[2])
    assert claimed == {SLOTS[0]: done.runs[0].id, SLOTS[1]: timed.id, SLOTS[2]: done.runs[1].id}
    await deck.close()


async def test_two_engines_backfilling_one_range_run_each_slot_once(
    decks: Decks, tmp_path: Path
) -> None:
    one = decks(catalog(tmp_path, overlap="allow"))
    other = decks(catalog(tmp_path, overlap="allow"))
    one.gate().touch()
    slots = [T0 + timedelta(minutes=10 * i) for i in range(40)]

    def go(deck_index: int) -> Backfill:
        deck = (one, other)[deck_index]
        return backfill(deck.driver, "tick", slots[0], slots[-1])

    first, second = await asyncio.gather(asyncio.to_thread(go, 0), asyncio.to_thread(go, 1))
    made = [*first.runs, *second.runs]
    assert sorted(r.scheduled_for for r in made if r.scheduled_for) == slots
    assert len(made) == len(slots)  # every slot exactly once, whichever engine won it
    for run in made:
        deck = one if run in first.runs else other
        assert (await deck.wait_ended(run.id)).status == "succeeded"
    await other.close()
    await one.close()


async def test_backfilled_runs_survive_a_restart_and_run_once(decks: Decks, tmp_path: Path) -> None:
    first = decks(catalog(tmp_path))
    done = backfill(first.driver, "tick", SLOTS[0], SLOTS[2])
    await first.wait_running(done.runs[0].id)
    await first.close()  # the engine goes away; one run holds, two wait in the store
    second = decks(catalog(tmp_path), load=False)
    recovered = second.driver.recover()
    assert recovered.adopted == [done.runs[0].id]
    second.driver.load(second.applied)
    second.gate().touch()
    ended = [await second.wait_ended(r.id) for r in done.runs]
    assert [r.status for r in ended] == ["succeeded"] * 3
    assert [second.event_types(r.id).count("started") for r in done.runs] == [1, 1, 1]
    await second.close()


async def test_refusals_change_nothing(decks: Decks, tmp_path: Path) -> None:
    deck = decks(catalog(tmp_path))
    now = deck.driver.clock.now()
    with pytest.raises(SlotError, match="more than 1,000 slots"):
        backfill(deck.driver, "tick", T0, T0 + timedelta(minutes=10 * 1000))
    with pytest.raises(SlotError, match="in the future"):
        backfill(deck.driver, "tick", T0, now + timedelta(hours=1))
    with pytest.raises(SlotError, match="after to"):
        backfill(deck.driver, "tick", SLOTS[2], SLOTS[0])
    with pytest.raises(RunRefused, match="no schedule named 'nope'"):
        backfill(deck.driver, "nope", SLOTS[0], SLOTS[2])
    with deck.store.transaction() as tx:
        tx.suspensions.add_suspension(
            kind="schedule", name="tick", reason="vendor down", created_by="ops",
            created_at=now, until=None,
        )  # fmt: skip
    with pytest.raises(RunRefused, match="suspended: vendor down"):
        backfill(deck.driver, "tick", SLOTS[0], SLOTS[2])
    # Exactly 1,000 slots is allowed (dry run: nothing recorded either way).
    preview = backfill(deck.driver, "tick", T0, T0 + timedelta(minutes=10 * 999), dry_run=True)
    assert len(preview.slots) == 1000
    assert deck.runs("tick") == []
    assert deck.store.runs.claimed_fires("tick", T0, now) == {}
    await deck.close()


async def test_jitter_delays_a_timed_slot_by_its_own_deterministic_delay(
    decks: Decks,
) -> None:
    one = decks(catalog(Path("/nonexistent")))
    other = decks(catalog(Path("/nonexistent")))
    # A slot that falls due now, so that its delay is waited for real.
    nominal = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    delay = jitter_delay("spread", nominal, timedelta(seconds=3))
    assert delay == jitter_delay("spread", nominal, timedelta(seconds=3))
    run = one.driver.fire("spread", nominal, decided_at=nominal)
    assert run is not None
    assert other.driver.fire("spread", nominal) is None  # one slot, one run, one delay
    assert run.scheduled_for == nominal  # the nominal slot; the delay is recorded
    assert run.detail["jitter_ms"] == round(delay.total_seconds() * 1000)
    assert run.plan.not_before == nominal + delay
    ended = await one.wait_ended(run.id)
    assert ended.status == "succeeded"
    waited = [e.detail for e in one.events(run.id) if e.type == "waiting"]
    assert waited == [{"for": "jitter"}] or delay < timedelta(milliseconds=50)
    assert ended.started_at is not None
    assert ended.started_at >= nominal + delay
    # A slot caught up late runs at once, without its delay.
    late = one.driver.fire("spread", nominal - timedelta(hours=1), catching_up="engine_down")
    assert late is not None
    assert "jitter_ms" not in late.detail
    assert late.plan.not_before is None
    await until(lambda: one.ended(late.id), "the caught-up run")
    await other.close()
    await one.close()


async def test_a_jittered_run_waits_out_its_delay_across_a_restart_and_starts_once(
    decks: Decks,
) -> None:
    first = decks(catalog(Path("/nonexistent")))
    # A slot whose delay is long enough to restart the engine inside it.
    nominal = datetime.now(UTC).replace(microsecond=0)
    while jitter_delay("spread", nominal, timedelta(seconds=3)) < timedelta(seconds=1.5):
        nominal += timedelta(seconds=1)
    delay = jitter_delay("spread", nominal, timedelta(seconds=3))
    run = first.driver.fire("spread", nominal, decided_at=nominal)
    assert run is not None
    assert run.status == "pending"
    await first.close()  # the engine goes away before the delay has passed
    assert not first.started(run.id)

    second = decks(catalog(Path("/nonexistent")), load=False)
    second.driver.recover()
    second.driver.load(second.applied)
    assert second.driver.fire("spread", nominal) is None  # still one run for the slot
    ended = await second.wait_ended(run.id)
    assert ended.status == "succeeded"
    assert ended.started_at is not None
    assert ended.started_at >= nominal + delay  # the same delay, after the restart
    assert second.event_types(run.id).count("started") == 1
    await second.close()
