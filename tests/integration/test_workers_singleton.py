"""A singleton worker never has two processes alive: through crash loops, applies that
change it (the old process stops first) and engine restarts (the lease is in the store,
and a restarted engine adopts the live process instead of starting another). The proof
is the lifetime log every process appends its start and end to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from jobdeck.workers.supervisor import Backoff
from tests.conftest import BACKENDS
from tests.integration.test_workers_harness import Deck, Engine, until

pytestmark = pytest.mark.anyio

FAST = Backoff(base=timedelta(milliseconds=100), most=timedelta(milliseconds=400))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
async def deck(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deck]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    made = Deck(tmp_path, url)
    try:
        yield made
    finally:
        await made.cleanup()


def singleton(deck: Deck, version: int, *args: str) -> str:
    return f"""
        version: 1
        project: singletons
        workers:
          notifier:
            command: {deck.argv(*args)}
            singleton: true
            stop_grace: 10s
            env: {{VERSION: "{version}"}}
        """


def running_of(engine: Engine, revision: int) -> bool:
    return any(r.revision == revision for r in engine.running("notifier"))


def logged(deck: Deck, run_id: int) -> bool:
    return str(run_id) in {run for _, _, run in deck.life.starts()}


def lease_holder(engine: Engine) -> int | None:
    with engine.store.reading() as tx:
        lease = tx.workers.lease("notifier")
    return None if lease is None else lease.holder_run


async def test_a_singleton_never_overlaps_through_crashes_applies_and_restarts(
    deck: Deck,
) -> None:
    first = await deck.engine(backoff=FAST)
    # A crash loop: each process dies 0.3 s after it starts.
    deck.apply(first, singleton(deck, 1, "--exit-after", "0.3", "--code", "1"))
    await until(lambda: len(deck.life.starts()) >= 4, "four crash-looping processes")

    # An apply that changes it: the new process is slow to stop (1 s after SIGTERM).
    deck.apply(first, singleton(deck, 2, "--term-delay", "1"))
    await until(lambda: running_of(first, 2), "the changed singleton to run")
    v2 = next(r for r in first.running("notifier") if r.revision == 2)
    assert lease_holder(first) == v2.id

    # Another change, and the engine goes away while the old process is still in its
    # second of stopping; the next engine must wait for it before starting the new one.
    deck.apply(first, singleton(deck, 3, "--term-delay", "1"))
    pid_v2 = int(v2.detail["pid"])
    await until(
        lambda: any(what == "term" and pid == pid_v2 for what, pid, _, _ in deck.life.entries()),
        "the old process to get SIGTERM",
    )
    await first.drop()
    second = await deck.engine(backoff=FAST)
    await until(lambda: running_of(second, 3), "the new singleton under the next engine")
    ended_v2 = second.store.runs.run(v2.id)
    assert ended_v2 is not None
    assert (ended_v2.status, ended_v2.reason) == ("cancelled", "changed")
    v3 = next(r for r in second.running("notifier") if r.revision == 3)
    assert lease_holder(second) == v3.id

    # A restart while it runs: the live process is adopted, nothing else starts.
    await until(lambda: logged(deck, v3.id), "the new process to log its start")
    starts = len(deck.life.starts())
    await second.drop()
    third = await deck.engine(backoff=FAST)
    await asyncio.sleep(1.5)  # several supervisor rounds; a second process would show
    assert len(deck.life.starts()) == starts
    assert [r.id for r in third.running("notifier")] == [v3.id]
    assert third.workers()["notifier"]["running"] == 1
    assert lease_holder(third) == v3.id

    assert deck.life.max_overlap() == 1, deck.life.entries()
    assert len(deck.life.starts()) >= 6


async def test_a_singleton_waits_for_a_lease_held_by_another_engine(deck: Deck) -> None:
    engine = await deck.engine(backoff=FAST)
    now = engine.app.clock.now()
    with engine.store.transaction() as tx:
        assert tx.workers.take_lease(
            "notifier",
            run_id=999_999,
            host="elsewhere:e0",
            now=now,
            expires_at=now + timedelta(seconds=4),
        )
    deck.apply(engine, singleton(deck, 1))
    await until(lambda: "notifier" in engine.workers(), "the engine to load the revision")
    await asyncio.sleep(0.5)
    assert not deck.life.starts(), "started while another engine held the lease"
    assert "elsewhere:e0" in str(engine.workers()["notifier"]["decision"])
    # Once the other engine's lease expires unrenewed, this engine takes it over.
    await until(lambda: running_of(engine, 1), "the take-over after the lease expired")
    assert lease_holder(engine) == engine.running("notifier")[0].id
    await until(
        lambda: engine.worker_status("notifier")["autoscale_decision"] is None,
        "the note about the other engine's lease to go",
    )
