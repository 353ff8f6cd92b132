"""Concurrency keys through the real driver: two engines on one store share a key, the
waiters start in order, and a schedule's overlap policy is decided before its key. Real
shims, marks written by the jobs themselves, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jobdeck.store.records import Run
from tests.integration.test_workflow_harness import PY, T0, Deck, Decks, until

pytestmark = pytest.mark.anyio

HOUR = timedelta(hours=1)


def catalog(gate: Path) -> str:
    return f"""
        version: 1
        project: keys
        schedules:
          reindex:
            rate: 1h
            command: JOB, "--hold", "{gate}"]
            overlap: buffer_one
            concurrency: {{key: db}}
          report:
            rate: 1h
            command: JOB, "--hold", "{gate}"]
            concurrency: {{key: db, limit: 1}}
        commands:
          vacuum:
            command: JOB]
            concurrency: {{key: db}}
          hurry:
            command: JOB]
            timeout: 1s
            notify: ["slack:#alerts"]
            concurrency: {{key: db}}
        """


@pytest.fixture
def shared(tmp_path: Path, store_url: str | None) -> Iterator[Decks]:
    made = Decks(tmp_path, store_url)
    yield made
    made.cleanup()


def vacuum(deck: Deck) -> Run:
    return deck.driver.run_command(
        "vacuum", [PY, str(deck.job), str(deck.marks)], trigger="api", requested_by="alice"
    )


def mark(deck: Deck, run_id: int, what: str) -> float:
    found = deck.mark(run_id, what)
    assert found is not None, f"run {run_id} has no {what} mark"
    return found


async def waits_for_the_key(deck: Deck, run: Run) -> None:
    await until(lambda: deck.run(run.id).reason == "concurrency", f"run {run.id} to wait")
    assert deck.run(run.id).status == "pending"
    assert {"for": "concurrency key db"} in [
        e.detail for e in deck.events(run.id) if e.type == "waiting"
    ]


async def test_two_engines_on_one_store_share_a_key(shared: Decks, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    one, other = shared(catalog(gate)), shared(catalog(gate))
    held = one.driver.fire("reindex", T0)
    assert held is not None
    await one.wait_running(held.id)
    waiting = other.driver.fire("report", T0)
    assert waiting is not None
    await waits_for_the_key(other, waiting)
    assert not other.started(waiting.id)
    [use] = one.store.runs.concurrency_keys()
    assert [h.run_id for h in use.holders] == [held.id]
    assert [w.run_id for w in use.waiters] == [waiting.id]
    gate.touch()
    assert (await one.wait_ended(held.id)).status == "succeeded"
    # The other engine learns of the release by asking again (within a second or so).
    assert (await other.wait_ended(waiting.id)).status == "succeeded"
    assert mark(other, waiting.id, "start") >= mark(one, held.id, "end")
    assert "concurrency" in other.event_types(waiting.id)
    await other.close()
    await one.close()


async def test_overlap_is_decided_first_and_waiters_get_the_key_oldest_first(
    shared: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deck = shared(catalog(gate))
    first = deck.driver.fire("reindex", T0)
    assert first is not None
    await deck.wait_running(first.id)
    command = vacuum(deck)
    await waits_for_the_key(deck, command)
    buffered = deck.driver.fire("reindex", T0 + HOUR)
    assert buffered is not None
    assert buffered.detail["buffered"] is True
    skipped = deck.driver.fire("reindex", T0 + 2 * HOUR)
    assert skipped is not None
    assert (skipped.status, skipped.reason) == ("skipped", "overlap")
    # Held back by its own schedule's overlap, the buffered run is not in the key's line.
    [use] = deck.store.runs.concurrency_keys()
    assert [w.run_id for w in use.waiters] == [command.id]
    gate.touch()
    for run in (first, command, buffered):
        assert (await deck.wait_ended(run.id)).status == "succeeded"
    assert mark(deck, command.id, "start") >= mark(deck, first.id, "end")
    assert mark(deck, buffered.id, "start") >= mark(deck, command.id, "end")
    assert deck.store.runs.concurrency_keys() == []
    await deck.close()


async def test_a_waiter_past_its_timeout_ends_timed_out_and_is_notified(
    shared: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    deck = shared(catalog(gate))
    held = deck.driver.fire("report", T0)
    assert held is not None
    await deck.wait_running(held.id)
    hurry = deck.driver.run_command(
        "hurry", [PY, str(deck.job), str(deck.marks)], trigger="api", requested_by="alice"
    )
    ended = await deck.wait_ended(hurry.id)
    assert (ended.status, ended.reason) == ("timed_out", "concurrency")
    assert ended.started_at is None
    assert ended.detail["why"] == "waited for its key past its timeout"
    assert not deck.started(hurry.id)
    assert [(n.targets, n.run.id, n.run.status) for n in deck.notices] == [
        (["slack:#alerts"], hurry.id, "timed_out")
    ]
    gate.touch()
    assert (await deck.wait_ended(held.id)).status == "succeeded"
    await deck.close()
