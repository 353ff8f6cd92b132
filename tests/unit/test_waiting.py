"""Waiting runs: parked runs of a full pool are passed by, and no pump decides otherwise
than one that looks at every waiting run, oldest first."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from jobdeck.store.records import Run
from jobdeck.workflow.waiting import Waiting, WaitingRuns

NOW = datetime(2026, 3, 29, tzinfo=UTC)
CAPS = {"a": 2, "b": 1, "free": None}


def wait(run_id: int, pool: str, *, exclusive: bool = False) -> Waiting:
    run = Run(
        id=run_id,
        job=f"job-{run_id % 3}",
        kind="schedule",
        trigger="manual",
        status="pending",
        created_at=NOW,
        pool=pool,
    )
    return Waiting(run, exclusive=exclusive)


def test_a_parked_run_is_passed_by_until_its_pool_has_room() -> None:
    waiting = WaitingRuns()
    for run_id in (1, 2, 3):
        waiting[run_id] = wait(run_id, "a")
    assert waiting.candidates(lambda pool: 0) == [1, 2, 3]
    waiting.park(2, "a")
    waiting.park(3, "a")
    assert waiting.candidates(lambda pool: 0) == [1]
    assert waiting.candidates(lambda pool: 1) == [1, 2]  # the oldest parked, as room allows
    assert waiting.candidates(lambda pool: None) == [1, 2, 3]  # no limit: all of them
    assert set(waiting) == {1, 2, 3}
    assert len(waiting) == 3


def test_only_plain_runs_park_and_removed_ones_never_come_back() -> None:
    waiting = WaitingRuns()
    waiting[1] = wait(1, "a", exclusive=True)
    waiting[2] = wait(2, "a")
    waiting[3] = wait(3, "a")
    waiting.park(1, "a")  # it waits for its job, too: a pump must look at it each time
    waiting.park(2, "a")
    waiting.park(3, "a")
    del waiting[2]  # cancelled while parked
    assert 2 not in waiting
    assert waiting.candidates(lambda pool: 1) == [1, 3]
    waiting.park(3, "a")
    waiting.unpark_all()
    assert waiting.candidates(lambda pool: 0) == [1, 3]


def _pump(
    ids: list[int], waits: dict[int, Waiting], running: dict[int, str], park: WaitingRuns | None
) -> list[int]:
    """The dispatcher's rule: oldest first; an exclusive run whose job runs waits; a run
    of a full pool waits (and, with ``park``, a plain one is parked)."""
    in_pool: dict[str, int] = {}
    for pool in running.values():
        in_pool[pool] = in_pool.get(pool, 0) + 1
    running_jobs = {f"job-{r % 3}" for r in running}
    started = []
    for run_id in ids:
        entry = waits[run_id]
        pool = entry.run.pool or "default"
        cap = CAPS[pool]
        if entry.exclusive and entry.run.job in running_jobs:
            continue
        if cap is not None and in_pool.get(pool, 0) >= cap:
            if park is not None:
                park.park(run_id, pool)
            continue
        started.append(run_id)
        in_pool[pool] = in_pool.get(pool, 0) + 1
        running_jobs.add(entry.run.job)
        running[run_id] = pool
    return started


def test_parking_never_changes_which_runs_start() -> None:
    rng = random.Random(8)
    naive: dict[int, Waiting] = {}
    parked = WaitingRuns()
    running_naive: dict[int, str] = {}
    running_parked: dict[int, str] = {}
    next_id = 1
    looked, backlog = 0, 0
    for _ in range(3000):
        action = rng.random()
        if action < 0.45:
            entry = wait(next_id, rng.choice(list(CAPS)), exclusive=rng.random() < 0.2)
            naive[next_id] = entry
            parked[next_id] = entry
            next_id += 1
        elif action < 0.75 and running_naive:
            done = rng.choice(sorted(running_naive))
            del running_naive[done]
            del running_parked[done]
        elif action < 0.8 and naive:
            gone = rng.choice(sorted(naive))  # cancelled while it waited
            del naive[gone]
            del parked[gone]

        def room(pool: str) -> int | None:
            cap = CAPS[pool]
            used = sum(1 for p in running_parked.values() if p == pool)
            return None if cap is None else max(0, cap - used)

        looked_at = parked.candidates(room)
        expected = _pump(sorted(naive), naive, running_naive, None)
        got = _pump(looked_at, naive, running_parked, parked)
        assert got == expected
        for run_id in expected:
            del naive[run_id]
            del parked[run_id]
        assert set(parked) == set(naive)
        looked += len(looked_at)
        backlog += len(naive) + len(expected)
    # The backlog grew to hundreds; pumps looked at its exclusive runs (a fifth of it,
    # never parked) and little else.
    assert len(naive) > 200
    assert looked < backlog / 3
