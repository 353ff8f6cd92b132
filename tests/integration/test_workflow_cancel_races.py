"""Cancels racing a run's way to the queue and its launch, through the real driver with
real shims: a cancelled run never starts, never stops another run, and is not retried."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from jobdeck.execute.launch import result, shim_info
from jobdeck.execute.proc import is_alive
from jobdeck.store.records import Run
from tests.integration.test_workflow_harness import HOST, T0, Decks

pytestmark = pytest.mark.anyio

HOUR = timedelta(hours=1)


async def test_a_cancel_other_run_cancelled_before_it_queued_stops_nothing(
    decks: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deck = decks(f"""
        version: 1
        project: races
        schedules:
          tick:
            rate: 1h
            command: JOB, "--hold", "{gate}"]
            overlap: cancel_other
            timeout: 1m
            kill_grace: 5s
        """)
    first = deck.driver.fire("tick", T0)
    assert first is not None
    await deck.wait_running(first.id)
    # The scheduler's thread records the next slot (it replaces the first run) and hands
    # it to the driver's loop; the loop is busy meanwhile, and cancels it before it
    # arrives there (as an API request would, between the two).
    fired: list[Run | None] = []
    timer = threading.Thread(target=lambda: fired.append(deck.driver.fire("tick", T0 + HOUR)))
    timer.start()
    timer.join()
    newer = fired[0]
    assert newer is not None
    assert newer.detail["cancels"] == [first.id]
    deck.driver.cancel(newer.id, by="alice", why="not this one")
    dropped = await deck.wait_ended(newer.id)
    assert (dropped.status, dropped.reason) == ("cancelled", "cancelled")
    assert dropped.detail["cancelled_by"] == "alice"
    for _ in range(20):
        await asyncio.sleep(0.01)  # a cancel of the first run would be under way by now
    assert "cancelling" not in deck.event_types(first.id)
    assert not deck.started(newer.id)
    gate.touch()
    ended = await deck.wait_ended(first.id)
    assert (ended.status, ended.reason) == ("succeeded", None)
    await deck.close()


async def test_a_run_cancelled_while_being_launched_is_not_retried(decks: Decks) -> None:
    deck = decks("""
        version: 1
        project: races
        schedules:
          broken:
            rate: 1h
            command: ["/nonexistent/program"]
            retry: {launch: 3, backoff: 1s}
        """)
    run = deck.driver.fire("broken", T0)
    assert run is not None
    # Handed to the executor already (its launch is in flight) when the cancel comes.
    assert run.id in deck.driver.runs.running
    deck.driver.cancel(run.id, by="alice", why="wrong binary")
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.reason) == ("failed", "launch_error")
    for _ in range(20):
        await asyncio.sleep(0.01)
    # Cancelled: no further attempt, neither waiting nor recorded.
    assert [r.id for r in deck.runs("broken")] == [run.id]
    assert not deck.driver.runs.waiting
    await deck.close()


def block_until_ended(run_dir: Path) -> None:
    """Wait, keeping the event loop busy (nothing is handed over meanwhile), until the
    run's shim has written its result and exited."""
    shim = shim_info(run_dir)
    assert shim is not None
    deadline = time.monotonic() + 30
    while result(run_dir) is None or is_alive(shim.shim_pid, shim.shim_start):
        assert time.monotonic() < deadline, "the run's shim did not end"
        time.sleep(0.02)


async def test_cancel_other_of_a_run_that_ended_meanwhile_leaves_it_as_it_ended(
    decks: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deck = decks(f"""
        version: 1
        project: races
        schedules:
          tick:
            rate: 1h
            command: JOB, "--hold", "{gate}"]
            overlap: cancel_other
            timeout: 1m
            kill_grace: 5s
        """)
    first = deck.driver.fire("tick", T0)
    assert first is not None
    await deck.wait_running(first.id)
    # The scheduler's thread decides that the next slot replaces the first run; before
    # the loop gets to it, the first run ends on its own (its shim is gone).
    fired: list[Run | None] = []
    timer = threading.Thread(target=lambda: fired.append(deck.driver.fire("tick", T0 + HOUR)))
    timer.start()
    timer.join()
    newer = fired[0]
    assert newer is not None
    assert newer.detail["cancels"] == [first.id]
    gate.touch()
    block_until_ended(deck.executor.run_dir(first.id))
    ended = await deck.wait_ended(first.id)
    assert (ended.status, ended.reason) == ("succeeded", None)
    await deck.wait_ended(newer.id)
    assert deck.event_types(first.id) == ["created", "started", "ended"]
    assert first.id not in deck.driver.runs.cancelling
    await deck.close()


async def test_a_cancel_the_engine_died_before_carrying_out_is_carried_out_after_a_restart(
    decks: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    text = f"""
        version: 1
        project: races
        schedules:
          tick:
            rate: 1h
            command: JOB, "--hold", "{gate}"]
            timeout: 1m
            kill_grace: 5s
        """
    first = decks(text)
    run = first.driver.fire("tick", T0)
    assert run is not None
    await first.wait_running(run.id)
    first.driver.cancel(run.id, by="alice", why="stuck")
    # The engine goes away before it has signalled anything (as under kill -9).
    await first.close()
    assert first.run(run.id).status == "running"
    assert first.mark(run.id, "term") is None

    second = decks(text, load=False)
    second.driver.recover()
    second.driver.load(second.applied)
    ended = await second.wait_ended(run.id)
    assert (ended.status, ended.reason) == ("cancelled", "cancelled")
    assert (ended.detail["cancelled_by"], ended.detail["cancel_reason"]) == ("alice", "stuck")
    assert second.mark(run.id, "end") is None  # stopped, not let go through the gate
    await second.close()


async def test_a_pending_run_whose_cancel_was_recorded_never_starts_after_a_restart(
    decks: Decks, tmp_path: Path
) -> None:
    """An engine recorded the cancel of a run on its way to the queue, then died before
    it dropped it: the next engine does not start it."""
    deck = decks(
        """
        version: 1
        project: races
        schedules:
          tick:
            rate: 1h
            command: JOB]
        """,
        load=False,
    )
    asked = {"cancelled_by": "alice", "cancel_reason": "not now"}
    with deck.store.transaction() as tx:
        run = tx.runs.create_run(
            job="tick",
            kind="schedule",
            trigger="schedule",
            status="pending",
            created_at=T0,
            scheduled_for=T0,
            host=HOST,
            detail={"cancel_requested": asked},
        )
    recovered = deck.driver.recover()
    assert recovered.waiting == []
    deck.driver.load(deck.applied)
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.reason) == ("cancelled", "cancelled")
    assert (ended.detail["cancelled_by"], ended.detail["cancel_reason"]) == ("alice", "not now")
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert not deck.started(run.id)
    await deck.close()
