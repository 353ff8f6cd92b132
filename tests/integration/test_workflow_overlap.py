"""Overlap policies through the real driver: real shims, a real store, marks written by
the jobs themselves proving what ran when."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.test_workflow_harness import T0, Deck, Decks, until

pytestmark = pytest.mark.anyio

HOUR = timedelta(hours=1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the driver and executor are built on asyncio


@pytest.fixture
def decks(tmp_path: Path) -> Iterator[Decks]:
    made = Decks(tmp_path)
    yield made
    made.cleanup()


def catalog(policy: str, gate: Path, *, extra: str = "", grace: str = "5s") -> str:
    return f"""
        version: 1
        project: overlaps
        schedules:
          tick:
            rate: 1h
            command: JOB, "--hold", "{gate}"{extra}]
            overlap: {policy}
            timeout: 1m
            kill_grace: {grace}
        """


def mark(deck: Deck, run_id: int, what: str) -> float:
    found = deck.mark(run_id, what)
    assert found is not None, f"run {run_id} has no {what} mark"
    return found


async def test_skip_records_a_skipped_run_while_one_is_active(decks: Decks, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    deck = decks(catalog("skip", gate))
    first = deck.driver.fire("tick", T0)
    assert first is not None
    await deck.wait_running(first.id)
    second = deck.driver.fire("tick", T0 + HOUR)
    assert second is not None
    assert (second.status, second.reason) == ("skipped", "overlap")
    assert second.detail["active_runs"] == [first.id]
    assert deck.driver.fire("tick", T0) is None  # a slot is decided once
    gate.touch()
    done = await deck.wait_ended(first.id)
    assert done.status == "succeeded"
    assert not deck.started(second.id)
    assert deck.event_types(first.id) == ["created", "started", "ended"]
    assert deck.event_types(second.id) == ["created"]
    assert deck.events(second.id)[0].detail == {"status": "skipped", "reason": "overlap"}
    assert deck.notices == []
    await deck.close()


async def test_buffer_one_keeps_one_waiting_run_that_starts_after_the_active_one(
    decks: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deck = decks(catalog("buffer_one", gate))
    first = deck.driver.fire("tick", T0)
    assert first is not None
    await deck.wait_running(first.id)
    buffered = deck.driver.fire("tick", T0 + HOUR)
    third = deck.driver.fire("tick", T0 + 2 * HOUR)
    assert buffered is not None
    assert third is not None
    assert buffered.status == "pending"
    assert buffered.detail["buffered"] is True
    assert (third.status, third.reason) == ("skipped", "overlap")
    assert deck.run(buffered.id).status == "pending"
    assert not deck.started(buffered.id)
    gate.touch()
    for run in (first, buffered):
        assert (await deck.wait_ended(run.id)).status == "succeeded"
    # The buffered run started only after the first one had ended.
    assert mark(deck, buffered.id, "start") >= mark(deck, first.id, "end")
    assert not deck.started(third.id)
    waits = [e for e in deck.events(buffered.id) if e.type == "waiting"]
    assert [e.detail for e in waits] == [{"for": "overlap"}]
    assert deck.event_types(buffered.id) == ["created", "waiting", "started", "ended"]
    # With nothing active, the next fire starts at once again.
    later = deck.driver.fire("tick", T0 + 3 * HOUR)
    assert later is not None
    assert (await deck.wait_ended(later.id)).status == "succeeded"
    await deck.close()


async def test_cancel_other_stops_the_active_run_with_sigterm_then_starts_the_new_one(
    decks: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deck = decks(catalog("cancel_other", gate))
    first = deck.driver.fire("tick", T0)
    assert first is not None
    await deck.wait_running(first.id)
    newer = deck.driver.fire("tick", T0 + HOUR)
    assert newer is not None
    assert newer.detail["cancels"] == [first.id]
    stopped = await deck.wait_ended(first.id)
    assert (stopped.status, stopped.reason) == ("cancelled", "overlap")
    assert stopped.detail["cancelled_by"] == newer.id
    assert deck.event_types(first.id) == ["created", "started", "cancelling", "ended"]
    await deck.wait_running(newer.id)
    # The first run got SIGTERM (its handler marked it) before the newer one started.
    assert mark(deck, newer.id, "start") >= mark(deck, first.id, "term")
    assert deck.mark(first.id, "end") is None
    gate.touch()
    assert (await deck.wait_ended(newer.id)).status == "succeeded"
    assert deck.notices == []  # a replaced run is no failure
    await deck.close()


async def test_cancel_other_kills_a_run_that_ignores_sigterm_after_the_grace(
    decks: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deck = decks(catalog("cancel_other", gate, extra=', "--ignore-term"', grace="700ms"))
    first = deck.driver.fire("tick", T0)
    assert first is not None
    await deck.wait_running(first.id)
    newer = deck.driver.fire("tick", T0 + HOUR)
    assert newer is not None
    stopped = await deck.wait_ended(first.id)
    assert (stopped.status, stopped.reason, stopped.detail["signal"]) == (
        "cancelled",
        "overlap",
        9,
    )
    cancelling = next(e for e in deck.events(first.id) if e.type == "cancelling")
    assert cancelling.detail == {"by": newer.id, "grace_s": 0.7}
    await deck.wait_running(newer.id)
    # SIGKILL came only after the grace: the newer run started at least 0.7 s later.
    assert mark(deck, newer.id, "start") - cancelling.at.timestamp() >= 0.7
    gate.touch()
    assert (await deck.wait_ended(newer.id)).status == "succeeded"
    await deck.close()


async def test_cancel_other_cancels_a_run_that_is_still_waiting(
    decks: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deck = decks(catalog("cancel_other", gate))
    # A retry-like wait: the driver holds runs in its pool queue; make one wait by
    # having the first run occupy the job, then replace both.
    first = deck.driver.fire("tick", T0)
    assert first is not None
    await deck.wait_running(first.id)
    second = deck.driver.fire("tick", T0 + HOUR)  # waits for the first to stop
    third = deck.driver.fire("tick", T0 + 2 * HOUR)  # replaces both
    assert second is not None
    assert third is not None
    assert set(third.detail["cancels"]) == {first.id, second.id}
    for run in (first, second):
        stopped = await deck.wait_ended(run.id)
        assert (stopped.status, stopped.reason) == ("cancelled", "overlap")
    assert not deck.started(second.id)
    await deck.wait_running(third.id)
    gate.touch()
    assert (await deck.wait_ended(third.id)).status == "succeeded"
    await deck.close()


async def test_allow_runs_both_at_once(decks: Decks, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    deck = decks(catalog("allow", gate))
    first = deck.driver.fire("tick", T0)
    second = deck.driver.fire("tick", T0 + HOUR)
    assert first is not None
    assert second is not None
    await until(lambda: deck.started(first.id) and deck.started(second.id), "both to start")
    await until(
        lambda: deck.run(first.id).status == deck.run(second.id).status == "running",
        "both to be recorded running",
    )
    gate.touch()
    for run in (first, second):
        assert (await deck.wait_ended(run.id)).status == "succeeded"
    # Each started before the other ended: they overlapped.
    assert mark(deck, second.id, "start") < mark(deck, first.id, "end")
    assert mark(deck, first.id, "start") < mark(deck, second.id, "end")
    await deck.close()


async def test_a_manual_run_goes_through_the_same_policy_unless_told_to_ignore_it(
    decks: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deck = decks(catalog("skip", gate))
    first = deck.driver.run_now("tick", requested_by="alice")
    assert (first.trigger, first.requested_by) == ("manual", "alice")
    assert "requested_at" in first.detail
    await deck.wait_running(first.id)
    skipped = deck.driver.run_now("tick")
    assert (skipped.status, skipped.reason) == ("skipped", "overlap")
    forced = deck.driver.run_now("tick", ignore_overlap=True)
    await deck.wait_running(forced.id)
    gate.touch()
    for run in (first, forced):
        assert (await deck.wait_ended(run.id)).status == "succeeded"
    assert mark(deck, forced.id, "start") < mark(deck, first.id, "end")
    await deck.close()


async def test_cancel_other_stops_a_run_that_is_still_being_launched(
    decks: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deck = decks(catalog("cancel_other", gate))
    # Back to back, without yielding: the first run's launch is still in flight.
    first = deck.driver.fire("tick", T0)
    newer = deck.driver.fire("tick", T0 + HOUR)
    assert first is not None
    assert newer is not None
    assert newer.detail["cancels"] == [first.id]
    stopped = await deck.wait_ended(first.id)
    assert (stopped.status, stopped.reason) == ("cancelled", "overlap")
    await deck.wait_running(newer.id)
    first_end = stopped.ended_at
    assert first_end is not None
    assert mark(deck, newer.id, "start") >= first_end.timestamp() - 0.01
    gate.touch()
    assert (await deck.wait_ended(newer.id)).status == "succeeded"
    assert deck.mark(first.id, "end") is None
    await deck.close()
