"""Timeouts, the retry taxonomy and pool concurrency through the real driver."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from jobdeck.execute import record
from jobdeck.execute.proc import is_alive
from jobdeck.execute.spec import RunSpec
from tests.integration.test_execute_harness import needs_cgroups
from tests.integration.test_workflow_harness import PY, T0, Decks, until

pytestmark = pytest.mark.anyio


def one_schedule(body: str) -> str:
    lines = "\n".join("            " + line for line in body.strip().splitlines())
    return f"""
        version: 1
        project: limits
        schedules:
          job:
            rate: 1h
            notify: ["webhook:http://127.0.0.1:9/hook"]
{lines}
        """


# -- timeouts -----------------------------------------------------------------------


async def test_a_timeout_stops_the_whole_tree_grandchild_included(
    decks: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "never"
    deck = decks(
        one_schedule(
            f"""
command: JOB, "--grandchild", "--hold", "{gate}"]
timeout: 500ms
kill_grace: 2s
retry: {{failure: 3}}
"""
        )
    )
    run = deck.driver.fire("job", T0)
    assert run is not None
    await until(lambda: deck.mark(run.id, "grandchild") is not None, "the grandchild")
    grandchild = int((deck.marks / f"{run.id}.grandchild").read_text())
    assert is_alive(grandchild, None)
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.reason) == ("timed_out", "timeout")
    assert not is_alive(grandchild, None)
    assert deck.mark(run.id, "term") is not None  # SIGTERM first, to the whole group
    assert ended.detail["duration_ms"] >= 500
    # A timeout is never retried, whatever retry.failure says.
    assert [r.id for r in deck.runs("job")] == [run.id]
    assert [n.run.id for n in deck.notices] == [run.id]
    notice = deck.notices[0]
    assert notice.targets == ["webhook:http://127.0.0.1:9/hook"]
    assert notice.run.status == "timed_out"
    assert f"run {run.id} started" in notice.tail
    assert deck.event_types(run.id) == ["created", "started", "ended"]
    await deck.close()


async def test_a_job_that_ignores_sigterm_gets_sigkill_after_the_grace(
    decks: Decks, tmp_path: Path
) -> None:
    gate = tmp_path / "never"
    deck = decks(
        one_schedule(
            f"""
command: JOB, "--ignore-term", "--hold", "{gate}"]
timeout: 300ms
kill_grace: 700ms
"""
        )
    )
    run = deck.driver.fire("job", T0)
    assert run is not None
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.reason, ended.detail["signal"]) == ("timed_out", "timeout", 9)
    assert ended.exit_code is None
    # Killed only after timeout + grace.
    assert ended.detail["duration_ms"] >= 1000 - 50
    assert deck.mark(run.id, "end") is None
    await deck.close()


# -- retries -------------------------------------------------------------------------


async def test_launch_errors_are_retried_with_linked_attempts_and_growing_backoff(
    decks: Decks,
) -> None:
    deck = decks(
        one_schedule(
            """
command: ["/nonexistent/jobdeck-no-such-program"]
retry: {launch: 2, backoff: 300ms}
"""
        )
    )
    first = deck.driver.fire("job", T0)
    assert first is not None
    await until(
        lambda: len(deck.runs("job")) == 3 and not deck.run(deck.runs("job")[-1].id).active,
        "three attempts",
    )
    attempts = deck.runs("job")
    assert [r.attempt for r in attempts] == [1, 2, 3]
    assert [r.trigger for r in attempts] == ["schedule", "retry", "retry"]
    assert [r.retry_of for r in attempts] == [None, attempts[0].id, attempts[1].id]
    assert {(r.status, r.reason) for r in attempts} == {("failed", "launch_error")}
    assert {r.scheduled_for for r in attempts} == {T0}
    assert all("/nonexistent/jobdeck-no-such-program" in r.detail["error"] for r in attempts)
    assert [r.detail.get("backoff_ms") for r in attempts] == [None, 300.0, 600.0]
    # Each retry waited its backoff after the attempt before it ended.
    for before, after in itertools.pairwise(attempts):
        assert before.ended_at is not None
        assert after.ended_at is not None
        gap = (after.ended_at - before.ended_at).total_seconds()
        assert gap >= after.detail["backoff_ms"] / 1000
    waits = [e.detail for e in deck.events(attempts[1].id) if e.type == "waiting"]
    assert waits == [{"for": "backoff"}]
    assert deck.event_types(attempts[2].id) == ["created", "waiting", "ended"]
    # One notice, for the last attempt: the earlier ones were not the end of the fire.
    assert [n.run.id for n in deck.notices] == [attempts[2].id]
    await deck.close()


async def test_an_application_failure_is_not_retried_by_default(decks: Decks) -> None:
    deck = decks(one_schedule('command: JOB, "--exit", "3"]'))
    run = deck.driver.fire("job", T0)
    assert run is not None
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.reason, ended.exit_code) == ("failed", "exit_code", 3)
    assert len(deck.runs("job")) == 1
    assert len(deck.notices) == 1
    assert f"run {run.id} ending with 3" in deck.notices[0].tail
    await deck.close()


async def test_an_application_failure_is_retried_when_retry_failure_asks(decks: Decks) -> None:
    deck = decks(
        one_schedule(
            """
command: JOB, "--exit", "4"]
retry: {failure: 1, backoff: 100ms}
"""
        )
    )
    run = deck.driver.fire("job", T0)
    assert run is not None
    await until(lambda: len(deck.runs("job")) == 2 and not deck.runs("job")[-1].active, "the retry")
    first, second = deck.runs("job")
    assert (second.attempt, second.retry_of, second.trigger) == (2, first.id, "retry")
    assert (second.status, second.exit_code) == ("failed", 4)
    assert deck.mark(first.id, "end") is not None
    assert deck.mark(second.id, "end") is not None  # it really ran again
    assert [n.run.id for n in deck.notices] == [second.id]
    await deck.close()


# -- pools ---------------------------------------------------------------------------


async def test_max_concurrency_makes_extra_runs_wait_visibly(decks: Decks, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    deck = decks(
        f"""
        version: 1
        project: limits
        pools:
          narrow: {{max_concurrency: 1, memory: 256MiB}}
        schedules:
          one:
            rate: 1h
            pool: narrow
            memory: 64MiB
            command: JOB, "--hold", "{gate}"]
          two:
            rate: 1h
            pool: narrow
            command: JOB, "--hold", "{gate}"]
        """
    )
    first = deck.driver.run_now("one")
    await deck.wait_running(first.id)
    second = deck.driver.run_now("two")
    await until(lambda: "waiting" in deck.event_types(second.id), "the second run to wait")
    waiting = next(e for e in deck.events(second.id) if e.type == "waiting")
    assert waiting.detail == {"for": "pool narrow is full (1 running)"}
    assert deck.run(second.id).status == "pending"
    assert second.id in deck.driver.runs.waiting
    # The run's own memory limit is part of what its shim was told.
    spec = record.read(deck.executor.run_dir(first.id)).spec
    assert spec is not None
    assert RunSpec.from_json(spec).isolation.memory_limit == 64 * 1024 * 1024
    gate.touch()
    for run in (first, second):
        assert (await deck.wait_ended(run.id)).status == "succeeded"
    assert deck.mark(second.id, "start") >= deck.mark(first.id, "end")  # type: ignore[operator]
    assert deck.run(first.id).pool == "narrow"
    await deck.close()


HOG = (
    "import time\n"
    "chunks = []\n"
    "for _ in range(40):\n"
    "    chunks.append(bytearray(8 * 1024 * 1024))\n"
    "print('allocated everything', flush=True)\n"
)


@needs_cgroups
async def test_a_run_past_its_memory_limit_ends_oom_killed_and_is_notified(
    decks: Decks,
) -> None:
    deck = decks(
        f"""
        version: 1
        project: limits
        pools:
          batch: {{memory: 256MiB}}
        schedules:
          hog:
            rate: 1h
            pool: batch
            memory: 64MiB
            command: ["{PY}", "-c", "{HOG.encode("unicode_escape").decode()}"]
            notify: ["slack:#alerts"]
        """
    )
    run = deck.driver.run_now("hog")
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.reason) == ("failed", "oom_killed")
    assert "allocated everything" not in deck.log(run.id)
    assert len(deck.runs("hog")) == 1  # an OOM kill is a failure: retry.failure is 0
    assert [n.run.reason for n in deck.notices] == ["oom_killed"]
    await deck.close()


async def test_what_a_program_leaves_behind_is_stopped_when_it_exits(decks: Decks) -> None:
    deck = decks(
        one_schedule(
            """
shell: "sleep 300 & echo $! > leftover.pid; echo parent done"
kill_grace: 1s
"""
        )
    )
    run = deck.driver.run_now("job")
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.exit_code) == ("succeeded", 0)
    assert deck.log(run.id) == "parent done\n"
    leftover = int((deck.root / "leftover.pid").read_text())
    assert not is_alive(leftover, None)
    await deck.close()


async def test_runs_work_the_same_with_per_process_limits_only(decks: Decks) -> None:
    deck = decks(
        """
        version: 1
        project: limits
        pools:
          batch: {memory: 512MiB, max_concurrency: 1}
        schedules:
          job:
            rate: 1h
            pool: batch
            memory: 256MiB
            command: JOB, "--exit", "5"]
            notify: ["slack:#alerts"]
        """,
        mode="rlimit",
    )
    assert deck.executor.pools.isolation == "rlimit"
    assert deck.executor.pools.warning is not None
    run = deck.driver.run_now("job")
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.exit_code, ended.pool) == ("failed", 5, "batch")
    spec = record.read(deck.executor.run_dir(run.id)).spec
    assert spec is not None
    isolation = RunSpec.from_json(spec).isolation
    assert (isolation.cgroup_version, isolation.memory_limit) == (None, 256 * 1024 * 1024)
    assert len(deck.notices) == 1
    await deck.close()
