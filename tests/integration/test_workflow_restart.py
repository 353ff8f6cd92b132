"""Runs outlive the engine: a second driver on the same store and state dir adopts the
live runs, records those that ended meanwhile, and ends those whose processes are gone
as ``lost``."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jobdeck.execute import record
from jobdeck.execute.executor import Executor
from jobdeck.execute.launch import shim_info
from jobdeck.execute.proc import is_alive
from jobdeck.store.records import Run
from jobdeck.workflow.decisions import CatchupDecision
from tests.integration.test_workflow_harness import PY, T0, Deck, Decks, until

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def decks(tmp_path: Path, store_url: str | None) -> Iterator[Decks]:
    """Restarts on each backend: the second engine opens the store anew."""
    made = Decks(tmp_path, store_url)
    yield made
    made.cleanup()


def catalog(tmp_path: Path) -> str:
    return f"""
        version: 1
        project: restarts
        schedules:
          live:
            rate: 1h
            command: JOB, "--hold", "{tmp_path / "gate"}"]
            notify: ["slack:#alerts"]
          doomed:
            rate: 1h
            command: JOB, "--hold", "{tmp_path / "never"}"]
            notify: ["slack:#alerts"]
          quick:
            rate: 1h
            command: JOB, "--hold", "{tmp_path / "quick-gate"}"]
        """


def kill_run(executor: Executor, run: Run) -> None:
    """What a crash of the machine's other parts looks like: the shim and the program
    are killed while no engine watches."""
    info = shim_info(executor.run_dir(run.id))
    assert info is not None
    assert info.child_pid is not None
    os.kill(info.shim_pid, signal.SIGKILL)
    os.kill(info.child_pid, signal.SIGKILL)


async def test_a_restarted_driver_adopts_live_runs_and_ends_vanished_ones_lost(
    decks: Decks, tmp_path: Path
) -> None:
    first = decks(catalog(tmp_path))
    live = first.driver.fire("live", T0)
    doomed = first.driver.fire("doomed", T0)
    quick = first.driver.fire("quick", T0)
    assert live is not None
    assert doomed is not None
    assert quick is not None
    for run in (live, doomed, quick):
        await first.wait_running(run.id)
    # The engine goes away without stopping anything: its runs go on.
    await first.close()
    doomed_info = shim_info(first.executor.run_dir(doomed.id))
    assert doomed_info is not None
    kill_run(first.executor, doomed)
    await until(
        lambda: not is_alive(doomed_info.shim_pid, doomed_info.shim_start), "the shim's death"
    )
    # One run ends on its own while no engine runs.
    (tmp_path / "quick-gate").touch()
    await until(lambda: record.read(first.executor.run_dir(quick.id)).result is not None, "quick")
    assert first.run(quick.id).status == "running"  # nobody recorded it yet

    # Like the server: adopt first, then load the applied revision.
    second = decks(catalog(tmp_path), load=False)
    recovered = second.driver.recover()
    # The quick run ended while no engine ran: its outcome is recorded, it is not
    # "adopted" as if it still ran.
    assert (recovered.adopted, recovered.finished, recovered.lost) == (
        [live.id],
        [quick.id],
        [doomed.id],
    )
    report = recovered.report()
    assert f"adopted 1 running run(s): [{live.id}]" in report
    assert f"recorded 1 run(s) that ended while the engine was down: [{quick.id}]" in report
    assert f"lost 1 run(s) with no process and no result: [{doomed.id}]" in report
    lost = second.run(doomed.id)
    assert (lost.status, lost.reason) == ("lost", "engine_restart")
    assert second.event_types(doomed.id) == ["created", "started", "vanished", "lost"]
    second.driver.load(second.applied)
    # The notice of the lost run went out once the targets were known.
    await until(lambda: [n.run.id for n in second.notices] == [doomed.id], "the lost notice")
    assert second.notices[0].targets == ["slack:#alerts"]
    assert f"run {doomed.id} started" in second.notices[0].tail

    done = await second.wait_ended(quick.id)
    assert done.status == "succeeded"
    assert second.event_types(quick.id) == ["created", "started", "adopted", "ended"]

    assert second.run(live.id).status == "running"
    (tmp_path / "gate").touch()
    ended = await second.wait_ended(live.id)
    assert (ended.status, ended.exit_code) == ("succeeded", 0)
    assert second.event_types(live.id) == ["created", "started", "adopted", "ended"]
    assert second.log(live.id) == f"run {live.id} started\nrun {live.id} ending with 0\n"
    assert [n.run.id for n in second.notices] == [doomed.id]
    await second.close()


async def test_a_run_launched_but_not_yet_recorded_is_adopted_not_started_twice(
    decks: Decks, tmp_path: Path
) -> None:
    first = decks(catalog(tmp_path))
    # What an engine that died between launching a run and recording it leaves behind:
    # a pending run in the store whose shim runs.
    spec = first.catalog.schedules["live"]
    with first.store.transaction() as tx:
        run = tx.runs.create_run(
            job="live",
            kind="schedule",
            trigger="manual",
            status="pending",
            created_at=T0,
            pool="default",
            host="test-host",
        )
    launched = await first.executor.start(
        run.id,
        spec,
        pool=None,
        argv=list(spec.command or []),
        workdir=tmp_path,
        env={"JOBDECK_RUN_ID": str(run.id)},
    )
    assert launched.result is None
    await first.close()

    second = decks(catalog(tmp_path))
    assert second.driver.recover().adopted == [run.id]
    assert second.run(run.id).status == "running"
    (tmp_path / "gate").touch()
    ended = await second.wait_ended(run.id)
    assert ended.status == "succeeded"
    assert second.event_types(run.id) == ["created", "adopted", "started", "ended"]
    assert (second.marks / f"{run.id}.start").exists()
    await second.close()


ENGINE = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from tests.integration.test_execute_harness import Harness
    from tests.integration.test_workflow_harness import Deck, until

    root, instance, url = Path(sys.argv[1]), sys.argv[2], sys.argv[3] or None
    harness = Harness(root)
    harness.instance = instance

    async def main():
        deck = Deck(root, sys.stdin.read(), harness, store_url=url)
        run = deck.driver.run_now("live", requested_by="engine-test")
        await until(lambda: deck.run(run.id).status == "running", "the run to run")
        print(run.id, flush=True)
        await asyncio.sleep(300)

    asyncio.run(main())
    """
)


async def test_kill_9_of_the_engine_during_a_run_then_restart_adopts_it(
    decks: Decks, tmp_path: Path
) -> None:
    text = catalog(tmp_path)
    engine = await asyncio.create_subprocess_exec(
        PY,
        "-c",
        ENGINE,
        str(tmp_path),
        decks.harness.instance,
        decks.store_url or "",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    assert engine.stdin is not None
    assert engine.stdout is not None
    engine.stdin.write(text.encode())
    engine.stdin.close()
    line = await asyncio.wait_for(engine.stdout.readline(), 60)
    engine.kill()
    assert await asyncio.wait_for(engine.wait(), 10) == -signal.SIGKILL
    run_id = int(line)

    deck: Deck = decks(text, load=False)
    assert deck.run(run_id).status == "running"
    assert deck.driver.recover().adopted == [run_id]
    deck.driver.load(deck.applied)
    (tmp_path / "gate").touch()
    ended = await deck.wait_ended(run_id)
    assert (ended.status, ended.requested_by) == ("succeeded", "engine-test")
    assert deck.log(run_id) == f"run {run_id} started\nrun {run_id} ending with 0\n"
    assert deck.event_types(run_id) == ["created", "started", "adopted", "ended"]
    await deck.close()


def timed_catalog(tmp_path: Path) -> str:
    return f"""
        version: 1
        project: restarts
        schedules:
          bounded:
            rate: 1h
            command: JOB, "--hold", "{tmp_path / "never"}"]
            timeout: 1500ms
            kill_grace: 500ms
            notify: ["slack:#alerts"]
        """


async def test_an_adopted_run_still_has_its_timeout_enforced(decks: Decks, tmp_path: Path) -> None:
    first = decks(timed_catalog(tmp_path))
    run = first.driver.fire("bounded", T0)
    assert run is not None
    await first.wait_running(run.id)
    await first.close()
    second = decks(timed_catalog(tmp_path))
    assert second.driver.recover().adopted == [run.id]
    ended = await second.wait_ended(run.id)
    assert (ended.status, ended.reason) == ("timed_out", "timeout")
    assert ended.detail["duration_ms"] >= 1500
    assert [n.run.id for n in second.notices] == [run.id]
    await second.close()


async def test_a_program_that_outlives_its_shim_is_stopped_and_the_run_lost(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(timed_catalog(tmp_path))
    run = deck.driver.fire("bounded", T0)
    assert run is not None
    await deck.wait_running(run.id)
    info = shim_info(deck.executor.run_dir(run.id))
    assert info is not None
    os.kill(info.shim_pid, signal.SIGKILL)  # watched: the driver sees it go at once
    lost = await deck.wait_ended(run.id)
    assert (lost.status, lost.reason) == ("lost", "vanished")
    await until(lambda: "orphans_stopped" in deck.event_types(run.id), "the orphans to stop")
    assert not is_alive(info.child_pid, info.child_start)
    assert deck.event_types(run.id) == [
        "created",
        "started",
        "vanished",
        "lost",
        "orphans_stopped",
    ]
    assert [n.run.id for n in deck.notices] == [run.id]
    await deck.close()
    assert_run_group_removed(deck, run.id)


async def test_a_program_whose_shim_died_while_no_engine_ran_is_stopped_and_lost(
    decks: Decks, tmp_path: Path
) -> None:
    first = decks(timed_catalog(tmp_path))
    run = first.driver.fire("bounded", T0)
    assert run is not None
    await first.wait_running(run.id)
    await first.close()
    info = shim_info(first.executor.run_dir(run.id))
    assert info is not None
    os.kill(info.shim_pid, signal.SIGKILL)
    await until(lambda: not is_alive(info.shim_pid, info.shim_start), "the shim's death")
    assert is_alive(info.child_pid, info.child_start)
    second = decks(timed_catalog(tmp_path))
    assert second.driver.recover().adopted == []
    assert second.run(run.id).status == "lost"
    await until(lambda: "orphans_stopped" in second.event_types(run.id), "the orphans to stop")
    assert not is_alive(info.child_pid, info.child_start)
    await second.close()
    assert_run_group_removed(second, run.id)


def assert_run_group_removed(deck: Deck, run_id: int) -> None:
    """A killed shim cannot remove its run's cgroup: the driver gives it back once the
    orphans are gone."""
    pools = deck.executor.pools
    if pools.hierarchy is not None:
        assert not (pools.memory_group("default") / f"run-{run_id}").exists()


async def test_a_catchup_queue_survives_an_engine_that_dies_mid_way(
    decks: Decks, tmp_path: Path
) -> None:
    """Three missed slots caught up: the first runs, two wait behind it, and the engine
    goes away (as under kill -9). The next one adopts the first, queues the others again,
    and a catch-up of the same slots fires none twice: each slot runs once, in order."""
    text = f"""
        version: 1
        project: restarts
        schedules:
          minutely:
            cron: "* * * * *"
            command: JOB, "--hold", "{tmp_path / "gate"}"]
            catchup: all
        """
    slots = tuple(T0 + timedelta(minutes=m) for m in range(3))
    first = decks(text)
    first.driver.catch_up(
        "minutely", CatchupDecision(run=slots), trigger="catchup", cause="engine_down"
    )
    runs = first.runs("minutely")
    assert [(r.scheduled_for, r.status) for r in runs] == [(slot, "pending") for slot in slots]
    await first.wait_running(runs[0].id)
    await first.close()

    second = decks(text, load=False)
    recovered = second.driver.recover()
    assert (recovered.adopted, recovered.waiting) == ([runs[0].id], [runs[1].id, runs[2].id])
    second.driver.load(second.applied)
    second.driver.catch_up(
        "minutely", CatchupDecision(run=slots), trigger="catchup", cause="engine_down"
    )
    assert len(second.runs("minutely")) == 3
    (tmp_path / "gate").touch()
    ended = [await second.wait_ended(run.id) for run in runs]
    assert [(r.status, r.scheduled_for) for r in ended] == [("succeeded", s) for s in slots]
    for before, after in itertools.pairwise(ended):
        start, end = second.mark(after.id, "start"), second.mark(before.id, "end")
        assert start is not None
        assert end is not None
        assert start >= end
    await second.close()


async def test_a_run_that_ended_while_no_engine_ran_does_not_make_the_catch_up_skip(
    decks: Decks, tmp_path: Path
) -> None:
    """The run of the last slot before the engine went down ends while it is down. The
    next engine's catch-up (decided right after it adopted its runs, as at a start) runs
    the newest missed slot: the ended run is no overlap, though its end is recorded by
    the new engine only now."""
    first = decks(catalog(tmp_path))
    quick = first.driver.fire("quick", T0)
    assert quick is not None
    await first.wait_running(quick.id)
    await first.close()
    (tmp_path / "quick-gate").touch()
    await until(lambda: record.read(first.executor.run_dir(quick.id)).result is not None, "quick")

    second = decks(catalog(tmp_path), load=False)
    second.driver.recover()
    second.driver.load(second.applied)
    missed = (T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    second.driver.catch_up(
        "quick",
        CatchupDecision(run=missed[-1:], missed=missed[:1]),
        trigger="catchup",
        cause="engine_down",
    )
    caught = {r.scheduled_for: r for r in second.runs("quick")}
    assert (caught[missed[0]].status, caught[missed[0]].reason) == ("skipped", "missed")
    latest = caught[missed[1]]
    assert (latest.status, latest.reason) == ("pending", None), latest.detail
    assert second.run(quick.id).status == "succeeded"
    await second.wait_ended(latest.id)
    await second.close()
