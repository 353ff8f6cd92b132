"""The worker supervisor with real processes and a real store: replicas kept, restarts
with backoff, stops with SIGTERM and stop_grace, rolling changes."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from jobdeck.execute import record
from jobdeck.workers.supervisor import Backoff
from tests.conftest import BACKENDS
from tests.integration.test_workers_harness import Deck, until

pytestmark = pytest.mark.anyio


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


async def jobdeck_status(deck: Deck) -> str:
    env = {**os.environ, "JOBDECK_STATE_DIR": str(deck.root / "state")}
    if deck.store_url:
        env["JOBDECK_STORE"] = deck.store_url
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobdeck", "status", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode()


def when(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment


def catalog(worker: str) -> str:
    return f"""
        version: 1
        project: workers
        workers:
        {worker}
        """


async def test_replicas_are_kept_and_a_killed_one_is_replaced(deck: Deck) -> None:
    engine = await deck.engine()
    deck.apply(
        engine,
        catalog(f"""
          indexer:
            command: {deck.argv()}
            replicas: 2
            stop_grace: 5s
        """),
    )
    await until(lambda: len(engine.running("indexer")) == 2, "two replicas")
    await until(lambda: len(deck.life.alive()) == 2, "two processes logged")
    first = engine.running("indexer")
    victim = first[0]
    os.kill(int(victim.detail["pid"]), signal.SIGKILL)

    def replaced() -> bool:
        running = engine.running("indexer")
        return len(running) == 2 and victim.id not in {r.id for r in running}

    await until(replaced, "the killed replica to be replaced")
    ended = engine.store.runs.run(victim.id)
    assert ended is not None
    assert ended.status == "failed"
    restart = [r for r in engine.runs("indexer") if r.retry_of == victim.id]
    assert len(restart) == 1
    assert restart[0].trigger == "retry"
    assert restart[0].attempt == victim.attempt + 1
    assert all(r.kind == "worker" and r.pool == "default" for r in engine.runs("indexer"))
    shown = engine.worker_status("indexer")
    assert shown["desired"] == 2
    assert shown["running"] == 2
    assert shown["restarts"] == 1
    assert shown["last_exit"]["run"] == victim.id
    # Each process has its own log.
    log = engine.app.log_path(restart[0].id)
    await until(lambda: "started" in log.read_text(), "the restarted replica's log")


async def test_a_crash_loop_backs_off_exponentially_and_shows_in_status(deck: Deck) -> None:
    backoff = Backoff(
        base=timedelta(milliseconds=300),
        most=timedelta(seconds=10),
        stable_after=timedelta(seconds=30),
    )
    engine = await deck.engine(backoff=backoff)
    deck.apply(
        engine,
        catalog(f"""
          crasher:
            command: {deck.argv("--exit-after", "0", "--code", "3")}
            replicas: 1
        """),
    )
    await until(lambda: len(deck.life.starts()) >= 5, "five starts", within=60)
    runs = engine.runs("crasher")[:5]
    assert [r.attempt for r in runs] == [1, 2, 3, 4, 5]
    assert [r.trigger for r in runs] == ["schedule", "retry", "retry", "retry", "retry"]
    gaps = []
    for before, after in itertools.pairwise(runs):
        assert before.ended_at is not None
        gaps.append((after.created_at - before.ended_at).total_seconds())
    # 0.3, 0.6, 1.2, 2.4 s: each wait at least its backoff (and the tick adds little).
    for gap, expected in zip(gaps, (0.3, 0.6, 1.2, 2.4), strict=True):
        assert expected * 0.95 <= gap <= expected + 1.0, gaps
    shown = engine.worker_status("crasher")
    assert shown["restarts"] >= 4
    assert shown["last_exit"]["exit_code"] == 3
    assert shown["last_exit"]["status"] == "failed"
    assert shown["last_exit"]["failures_in_a_row"] >= 4
    # `jobdeck status` shows the crash loop from the store alone.
    text = await jobdeck_status(deck)
    header, row = [line for line in text.splitlines() if "crasher" in line or "RESTARTS" in line]
    assert "RUNNING" in header
    assert "LAST EXIT" in header
    assert "failed (exit 3)" in row
    assert "backoff" in row


async def test_suspend_stops_with_sigterm_then_grace_then_sigkill(deck: Deck) -> None:
    engine = await deck.engine()
    deck.apply(
        engine,
        catalog(f"""
          polite:
            command: {deck.argv("--term-delay", "1")}
            stop_grace: 10s
          stubborn:
            command: {deck.argv("--ignore-term")}
            stop_grace: 1s
        """),
    )
    await until(lambda: len(engine.running("polite")) == 1, "polite running")
    await until(lambda: len(engine.running("stubborn")) == 1, "stubborn running")
    await until(lambda: len(deck.life.alive()) == 2, "both logged their start")
    polite = engine.running("polite")[0]
    stubborn = engine.running("stubborn")[0]
    await deck.suspend(engine, "polite")
    await deck.suspend(engine, "stubborn")
    await until(lambda: not engine.store.runs.active_runs(kind="worker"), "both stopped")
    ended_polite = engine.store.runs.run(polite.id)
    ended_stubborn = engine.store.runs.run(stubborn.id)
    assert ended_polite is not None
    assert ended_stubborn is not None
    assert (ended_polite.status, ended_polite.reason) == ("cancelled", "suspended")
    assert (ended_stubborn.status, ended_stubborn.reason) == ("cancelled", "suspended")
    entries = deck.life.entries()
    pid_polite = int(polite.detail["pid"])
    pid_stubborn = int(stubborn.detail["pid"])
    term = {pid: at for what, pid, at, _ in entries if what == "term"}
    end = {pid: at for what, pid, at, _ in entries if what == "end"}
    # The polite one got SIGTERM and was let finish its second of clean-up.
    assert end[pid_polite] - term[pid_polite] >= 0.95
    # The stubborn one got SIGTERM, ignored it, and was killed after its 1 s grace.
    assert pid_stubborn in term
    assert pid_stubborn not in end
    assert ended_stubborn.detail.get("signal") == signal.SIGKILL
    assert ended_stubborn.ended_at is not None
    # Suspended: nothing starts again while the suspension lasts.
    assert engine.worker_status("polite")["desired"] == 0
    assert len(engine.runs("polite")) == 1


async def test_a_change_rolls_one_replica_at_a_time_and_a_removal_stops_all(
    deck: Deck,
) -> None:
    engine = await deck.engine()

    def indexer(version: int) -> str:
        return catalog(f"""
          indexer:
            command: {deck.argv("--term-delay", "0.3")}
            replicas: 2
            stop_grace: 5s
            env: {{VERSION: "{version}"}}
        """)

    deck.apply(engine, indexer(1))
    await until(lambda: len(engine.running("indexer")) == 2, "two replicas")
    old = {r.id for r in engine.running("indexer")}
    deck.apply(engine, indexer(2))

    def rolled() -> bool:
        running = engine.running("indexer")
        return len(running) == 2 and all(r.revision == 2 for r in running)

    await until(rolled, "both replicas on the new revision")
    runs = {r.id: r for r in engine.runs("indexer")}
    new = sorted(set(runs) - old)
    assert len(new) == 2
    first_old_end = min(when(runs[i].ended_at) for i in old)
    first_new_start = when(runs[new[0]].started_at)
    second_new_start = when(runs[new[1]].started_at)
    # New first, then old: the first new replica ran before any old one stopped, and
    # the second new one started only after the first old one was gone.
    assert first_new_start < first_old_end
    assert first_old_end <= second_new_start
    assert all((runs[i].status, runs[i].reason) == ("cancelled", "changed") for i in old)
    assert deck.life.max_overlap() <= 3

    deck.apply(
        engine,
        catalog(f"""
          other:
            command: {deck.argv()}
        """),
    )
    await until(lambda: not engine.running("indexer"), "the removed worker stopped")
    assert {r.reason for r in engine.runs("indexer") if r.id in new} == {"removed"}
    await until(lambda: len(engine.running("other")) == 1, "the other worker running")


async def test_a_restarted_engine_adopts_live_replicas_and_replaces_one_that_died(
    deck: Deck,
) -> None:
    first = await deck.engine()
    deck.apply(
        first,
        catalog(f"""
          indexer:
            command: {deck.argv()}
            replicas: 2
            stop_grace: 5s
        """),
    )
    await until(lambda: len(first.running("indexer")) == 2, "two replicas")
    await until(lambda: len(deck.life.alive()) == 2, "both processes logged their start")
    survivor, victim = first.running("indexer")
    await first.drop()
    # While no engine runs, one process dies; its shim records the outcome.
    os.kill(int(victim.detail["pid"]), signal.SIGKILL)
    await until(
        lambda: record.read(first.app.log_path(victim.id).parent).result is not None, "a result"
    )
    second = await deck.engine()

    def replaced() -> bool:
        running = {r.id for r in second.running("indexer")}
        return len(running) == 2 and survivor.id in running and victim.id not in running

    await until(replaced, "the dead replica replaced and the live one kept")
    ended = second.store.runs.run(victim.id)
    assert ended is not None
    assert ended.status == "failed"
    assert ended.detail.get("signal") == signal.SIGKILL
    assert "adopted" in [e.type for e in second.store.runs.events(survivor.id)]
    await until(lambda: len(deck.life.starts()) == 3, "the replacement to log its start")
    assert second.workers()["indexer"]["restarts"] == 1


async def test_a_replica_change_starts_or_stops_only_the_difference(deck: Deck) -> None:
    """replicas 2 -> 3 starts one and keeps both; 3 -> 1 stops the two newest. No spec
    change, so nothing restarts; the engine's own starts are not ``manual``."""
    engine = await deck.engine()

    def indexer(replicas: int) -> str:
        return catalog(f"""
          indexer:
            command: {deck.argv()}
            replicas: {replicas}
            stop_grace: 5s
        """)

    deck.apply(engine, indexer(2))
    await until(lambda: len(engine.running("indexer")) == 2, "two replicas")
    first = sorted(r.id for r in engine.running("indexer"))
    deck.apply(engine, indexer(3))
    await until(lambda: len(engine.running("indexer")) == 3, "three replicas")
    runs = engine.runs("indexer")
    assert len(runs) == 3
    assert set(first) <= {r.id for r in engine.running("indexer")}
    await until(lambda: len(deck.life.alive()) == 3, "three processes alive")
    assert deck.life.max_overlap() == 3
    assert {r.trigger for r in runs} == {"schedule"}

    deck.apply(engine, indexer(1))
    await until(lambda: len(engine.running("indexer")) == 1, "one replica")
    assert [r.id for r in engine.running("indexer")] == first[:1]
    ended = [r for r in engine.runs("indexer") if r.id != first[0]]
    await until(lambda: all(r.ended_at for r in engine.runs("indexer") if r.id != first[0]), "ends")
    assert {(r.status, r.reason) for r in engine.runs("indexer") if r.id != first[0]} == {
        ("cancelled", "scaled_in")
    }
    assert len(ended) == 2
