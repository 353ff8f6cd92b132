"""A run recorded ``lost`` is retried as its schedule's ``retry.lost`` says: a new attempt
linked to the lost one, with the backoff, by the injected clock; never a run that someone
asked to cancel, never beyond the policy."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jobdeck.clock import FakeClock
from jobdeck.execute.launch import shim_info
from jobdeck.execute.proc import is_alive
from jobdeck.store.records import CancelRequest, Run, RunPlan
from tests.integration.test_workflow_harness import T0, Deck, Decks, until

pytestmark = pytest.mark.anyio


@pytest.fixture
def decks(tmp_path: Path, store_url: str | None) -> Iterator[Decks]:
    made = Decks(tmp_path, store_url)
    yield made
    made.cleanup()


def catalog(tmp_path: Path) -> str:
    never = tmp_path / "never"
    return f"""
        version: 1
        project: lostretries
        schedules:
          again:
            rate: 1h
            command: JOB, "--hold", "{never}"]
            retry: {{lost: 1, backoff: 30s}}
            notify: ["slack:#alerts"]
          once:
            rate: 1h
            command: JOB, "--hold", "{never}"]
            notify: ["slack:#alerts"]
          stopped:
            rate: 1h
            command: JOB, "--hold", "{never}"]
            retry: {{lost: 3}}
            notify: ["slack:#alerts"]
        """


async def kill(deck: Deck, run: Run) -> None:
    """The shim and the program killed while no engine watches (a crash)."""
    info = shim_info(deck.executor.run_dir(run.id))
    assert info is not None
    assert info.child_pid is not None
    os.kill(info.shim_pid, signal.SIGKILL)
    os.kill(info.child_pid, signal.SIGKILL)
    await until(lambda: not is_alive(info.shim_pid, info.shim_start), "the shim's death")


async def test_lost_runs_are_retried_by_policy_once_the_revision_is_loaded(
    decks: Decks, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    first = decks(catalog(tmp_path), clock=clock, mode="rlimit")
    runs = {name: first.driver.fire(name, T0) for name in ("again", "once", "stopped")}
    for run in runs.values():
        assert run is not None
        await first.wait_running(run.id)
    # Someone asked to cancel this one; the engine died before it stopped it.
    with first.store.transaction() as tx:
        asked = RunPlan(cancel_requested=CancelRequest("alice", "wrong data")).detail()
        tx.runs.update_run(runs["stopped"].id, at=T0, event="cancel_requested", detail=asked)  # type: ignore[union-attr]
    await first.close()
    for run in runs.values():
        assert run is not None
        await kill(first, run)

    clock.set(T0 + timedelta(minutes=5))
    second = decks(catalog(tmp_path), load=False, clock=clock, mode="rlimit")
    recovered = second.driver.recover()
    assert sorted(recovered.lost) == sorted(r.id for r in runs.values() if r)
    second.driver.load(second.applied)  # the policies are known from here

    lost = runs["again"]
    assert lost is not None
    retries = [r for r in second.store.runs.runs(job="again", limit=10) if r.id != lost.id]
    (retry,) = retries
    assert (retry.status, retry.trigger, retry.attempt, retry.retry_of) == (
        "pending",
        "retry",
        2,
        lost.id,
    )
    assert retry.scheduled_for == lost.scheduled_for
    assert retry.plan.not_before == clock.now() + timedelta(seconds=30)
    assert retry.detail["retry_of_reason"] == "engine_restart"
    assert retry.plan.retries is not None
    assert retry.plan.retries.lost == 1
    # No retry for a schedule without retry.lost, nor for a run someone cancelled.
    assert [r.id for r in second.store.runs.runs(job="once", limit=10)] == [runs["once"].id]  # type: ignore[union-attr]
    assert [r.id for r in second.store.runs.runs(job="stopped", limit=10)] == [
        runs["stopped"].id  # type: ignore[union-attr]
    ]
    # A retried attempt is not the end of the fire: only the others are notified.
    await until(lambda: len(second.notices) >= 2, "the lost notices")
    assert sorted(n.run.job for n in second.notices) == ["once", "stopped"]
    await second.close()
