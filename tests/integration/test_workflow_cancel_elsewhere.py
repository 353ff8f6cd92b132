"""A cancel through another node than the run's (a cluster): the other node records it in
the store, the run's own node drops a pending run (never starting it) and stops a running
one, which ends ``cancelled`` with who and why. Two run drivers with different hosts on
one store; real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobdeck.clock import SystemClock
from jobdeck.workflow.driver import RunDriver
from tests.integration.test_workflow_harness import T0, Deck, Decks, until

pytestmark = pytest.mark.anyio

OTHER = "other-host:0123456789ab"


@pytest.fixture
def decks(tmp_path: Path, store_url: str | None) -> Iterator[Decks]:
    made = Decks(tmp_path, store_url)
    yield made
    made.cleanup()


def catalog(tmp_path: Path) -> str:
    return f"""
        version: 1
        project: elsewhere
        pools:
          one: {{max_concurrency: 1}}
        schedules:
          hold:
            rate: 1h
            overlap: allow
            pool: one
            command: JOB, "--hold", "{tmp_path / "gate"}"]
            kill_grace: 5s
        """


def other_node(deck: Deck) -> RunDriver:
    """Another engine on the same store: it only takes requests here."""
    return RunDriver(deck.store, SystemClock(), deck.executor, host=OTHER)


async def test_a_cancel_through_another_node_drops_or_stops_the_run_on_its_own(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(catalog(tmp_path), mode="rlimit")
    deck.driver.dispatcher.shared = lambda: True  # as on PostgreSQL with several nodes
    other = other_node(deck)
    running = deck.driver.fire("hold", T0)
    assert running is not None
    await deck.wait_running(running.id)
    queued = deck.driver.run_now("hold")  # waits for room in pool `one`
    assert queued.id in deck.driver.runs.waiting

    cancelled = other.cancel(queued.id, by="bob", why="not needed")
    assert (cancelled.status, cancelled.reason, cancelled.host) == ("cancelled", "cancelled", OTHER)
    assert (cancelled.detail["cancelled_by"], cancelled.detail["cancel_reason"]) == (
        "bob",
        "not needed",
    )
    await deck.driver.cancels.step()  # the owner's look: it drops the run
    assert queued.id not in deck.driver.runs.waiting

    asked = other.cancel(running.id, by="bob", why="stuck")
    assert asked.status == "running"
    assert asked.plan.cancel_requested is not None
    await deck.driver.cancels.step()  # the owner's look: it stops the run
    ended = await deck.wait_ended(running.id)
    assert (ended.status, ended.reason) == ("cancelled", "cancelled")
    assert (ended.detail["cancelled_by"], ended.detail["cancel_reason"]) == ("bob", "stuck")
    assert deck.mark(running.id, "term") is not None
    assert not deck.started(queued.id)
    assert "started" not in deck.event_types(queued.id)
    await deck.close()


async def test_a_run_cancelled_elsewhere_before_its_owner_looked_never_starts(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(catalog(tmp_path), mode="rlimit")
    deck.driver.dispatcher.shared = lambda: True
    other = other_node(deck)
    first = deck.driver.fire("hold", T0)
    assert first is not None
    await deck.wait_running(first.id)
    queued = deck.driver.run_now("hold")
    other.cancel(queued.id, by="bob", why="not needed")
    # The owner has not looked yet: the room frees up, and its launch asks the store.
    (tmp_path / "gate").touch()
    await deck.wait_ended(first.id)
    runs = deck.driver.runs
    await until(
        lambda: queued.id not in runs.running and queued.id not in runs.waiting,
        "the launch checked the store",
    )
    assert not deck.executor.run_dir(queued.id).exists(), "it was launched"
    assert not deck.started(queued.id)
    assert deck.run(queued.id).status == "cancelled"
    assert "started" not in deck.event_types(queued.id)
    await deck.close()


async def test_a_run_queued_after_the_look_began_is_not_taken_for_cancelled(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(catalog(tmp_path), mode="rlimit")
    first = deck.driver.fire("hold", T0)
    assert first is not None
    await deck.wait_running(first.id)
    queued = deck.driver.run_now("hold")  # waits for room in pool `one`
    follower = deck.driver.cancels
    # What a read that began before the run queued saw: not the run.
    follower.apply({}, waited=set())
    assert queued.id in deck.driver.runs.waiting
    # A run that waited before the read began and is not active any more: dropped.
    follower.apply({first.id: deck.run(first.id)}, waited={queued.id})
    assert queued.id not in deck.driver.runs.waiting
    (tmp_path / "gate").touch()
    await deck.wait_ended(first.id)
    await deck.close()


async def test_cancel_other_stops_a_run_of_another_node_before_its_replacement_starts(
    decks: Decks, tmp_path: Path
) -> None:
    """`overlap: cancel_other` across nodes: the leader's new fire replaces a run still
    running on another node (a drained node's, a fenced old leader's). That node is asked
    through the store and stops it; the new run starts only once it ended."""
    deck = decks(
        f"""
        version: 1
        project: elsewhere
        schedules:
          replace:
            rate: 1h
            overlap: cancel_other
            command: JOB, "--hold", "{tmp_path / "gate"}"]
            kill_grace: 5s
        """,
        mode="rlimit",
    )
    deck.driver.dispatcher.shared = lambda: True  # as on PostgreSQL with several nodes
    leader = other_node(deck)
    leader.load(deck.applied)
    leader.dispatcher.shared = lambda: True
    leader.dispatcher.elsewhere = lambda: [
        r for r in deck.store.runs.active_runs(host=deck.driver.runs.host)
        if r.status == "running"
    ]  # fmt: skip
    old = deck.driver.fire("replace", T0)
    assert old is not None
    await deck.wait_running(old.id)

    new = leader.fire("replace", T0.replace(hour=T0.hour + 1))
    assert new is not None
    assert new.plan.cancels == (old.id,)
    await until(
        lambda: deck.run(old.id).plan.cancel_requested is not None, "the stop asked in the store"
    )
    assert not deck.started(new.id), "the replacement started while the old run ran"
    await deck.driver.cancels.step()  # the old run's node looks: it stops it
    ended = await deck.wait_ended(old.id)
    assert (ended.status, ended.detail["cancelled_by"]) == ("cancelled", f"run {new.id}")
    assert ended.detail["cancel_reason"] == f"replaced by run {new.id} (cancel_other)"
    assert deck.mark(old.id, "term") is not None
    await deck.wait_running(new.id)
    started = deck.mark(new.id, "start")
    assert started is not None
    assert started >= (deck.mark(old.id, "term") or 0)
    (tmp_path / "gate").touch()
    await deck.wait_ended(new.id)
    await leader.aclose()
    await deck.close()
