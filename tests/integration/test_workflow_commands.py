"""Command runs through the driver: argv as given, the command's pool, memory and
timeout, suspensions, notices, dispatch timings, and adoption after a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event

from jobdeck.execute import record
from jobdeck.execute.proc import is_alive
from jobdeck.execute.spec import RunSpec
from jobdeck.store.engine import READ_ONLY
from jobdeck.workflow.refusals import CancelRefused, RunRefused
from tests.integration.test_workflow_harness import PY, Deck, Decks, until

pytestmark = pytest.mark.anyio


def catalog(tmp_path: Path) -> str:
    gate = tmp_path / "gate"
    return f"""
        version: 1
        project: commands
        pools:
          tools: {{max_concurrency: 1, memory: 256MiB, priority: critical}}
        schedules:
          hog:
            rate: 1h
            pool: tools
            command: JOB, "--hold", "{gate}"]
        commands:
          push:
            command: ["{PY}", "-c", "print('{{title}}')", "{{title}}"]
            params:
              title: {{type: string, required: true}}
            pool: tools
            memory: 64MiB
            timeout: 30s
            notify: ["slack:#push"]
          slow:
            command: ["sleep", "300"]
            timeout: 400ms
            kill_grace: 500ms
            notify: ["slack:#push"]
        """


def argv(deck: Deck, *extra: str) -> list[str]:
    """What a caller renders for the command: the job, its marks, then the params."""
    return [PY, str(deck.job), str(deck.marks), *extra]


def instant(text: object) -> datetime:
    assert isinstance(text, str)
    return datetime.fromisoformat(text)


async def test_a_command_runs_its_argv_as_given_in_its_pool_with_timings(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(catalog(tmp_path))
    (tmp_path / "gate").touch()
    title = "Breaking; touch pwned && echo $HOME"
    run = deck.driver.run_command(
        "push",
        argv(deck, "--echo", title),
        trigger="api",
        requested_by="alice",
        detail={"via": "test"},
        params={"title": title},
    )
    assert (run.kind, run.job, run.trigger, run.requested_by) == (
        "command",
        "push",
        "api",
        "alice",
    )
    assert run.params == {"title": title}
    assert run.pool == "tools"
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.exit_code) == ("succeeded", 0)
    # One argv element, never a shell: the metacharacters arrive as they were sent.
    assert f"echo: {title}\n" in deck.log(run.id)
    assert not (tmp_path / "pwned").exists()
    assert ended.detail["argv"] == argv(deck, "--echo", title)
    assert ended.detail["via"] == "test"
    requested = instant(ended.detail["requested_at"])
    dispatched = instant(ended.detail["dispatched_at"])
    started = instant(ended.detail["process_started_at"])
    assert requested <= dispatched
    # The program's start is stamped by its shim to the millisecond.
    assert dispatched - timedelta(milliseconds=1) <= started
    assert ended.started_at is not None
    assert started <= ended.started_at + timedelta(milliseconds=1)
    dispatch_ms = ended.detail["dispatch_ms"]
    assert isinstance(dispatch_ms, float)
    assert dispatch_ms == pytest.approx((started - requested) / timedelta(milliseconds=1))
    assert 0 <= dispatch_ms < 10_000
    spec = record.read(deck.executor.run_dir(run.id)).spec
    assert spec is not None
    isolation = RunSpec.from_json(spec).isolation
    assert isolation.memory_limit == 64 * 1024 * 1024
    assert RunSpec.from_json(spec).timeout == 30
    assert deck.event_types(run.id) == ["created", "started", "ended"]
    assert deck.notices == []
    await deck.close()


async def test_a_request_time_given_by_the_caller_counts_in_the_dispatch_latency(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(catalog(tmp_path))
    (tmp_path / "gate").touch()
    earlier = (deck.driver.clock.now() - timedelta(seconds=2)).isoformat()
    run = deck.driver.run_command(
        "push", argv(deck), trigger="chatops", requested_by="U1", detail={"requested_at": earlier}
    )
    ended = await deck.wait_ended(run.id)
    assert ended.detail["requested_at"] == earlier
    assert ended.detail["dispatch_ms"] >= 2000
    await deck.close()


async def test_a_command_waits_for_its_pools_concurrency_visibly(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(catalog(tmp_path))
    hog = deck.driver.run_now("hog")
    await deck.wait_running(hog.id)
    commits = _writes_committed(deck)
    run = deck.driver.run_command("push", argv(deck), trigger="api", requested_by="bob")
    # The run and what it waits for, in the request's one commit.
    assert len(commits) == 1
    assert deck.event_types(run.id) == ["created", "waiting"]
    waiting = next(e for e in deck.events(run.id) if e.type == "waiting")
    assert waiting.detail == {"for": "pool tools is full (1 running)"}
    (tmp_path / "gate").touch()
    ended = await deck.wait_ended(run.id)
    assert ended.status == "succeeded"
    assert deck.event_types(run.id) == ["created", "waiting", "started", "ended"]
    hog_end = deck.mark(hog.id, "end")
    run_start = deck.mark(run.id, "start")
    assert hog_end is not None
    assert run_start is not None
    assert run_start >= hog_end
    # The wait is part of the latency the run records.
    assert ended.detail["dispatch_ms"] >= (hog_end - run.created_at.timestamp()) * 1000
    await deck.close()


async def test_a_command_times_out_is_not_retried_and_is_notified(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(catalog(tmp_path))
    run = deck.driver.run_command("slow", ["sleep", "300"], trigger="api", requested_by="c")
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.reason) == ("timed_out", "timeout")
    assert ended.pool == "default"
    assert len(deck.store.runs.runs(job="slow")) == 1
    assert [(n.run.id, n.targets) for n in deck.notices] == [(run.id, ["slack:#push"])]
    await deck.close()


async def test_a_failing_command_is_notified_with_its_log_tail_and_not_retried(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(catalog(tmp_path))
    run = deck.driver.run_command(
        "push", argv(deck, "--exit", "2"), trigger="api", requested_by="d"
    )
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.reason, ended.exit_code) == ("failed", "exit_code", 2)
    assert len(deck.store.runs.runs(job="push")) == 1
    assert len(deck.notices) == 1
    assert f"run {run.id} ending with 2" in deck.notices[0].tail
    await deck.close()


async def test_a_missing_executable_ends_the_command_with_a_launch_error(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(catalog(tmp_path))
    run = deck.driver.run_command(
        "push", ["/nonexistent/jobdeck-push"], trigger="api", requested_by="e"
    )
    ended = await deck.wait_ended(run.id)
    assert (ended.status, ended.reason) == ("failed", "launch_error")
    assert "/nonexistent/jobdeck-push" in ended.detail["error"]
    assert "dispatched_at" in ended.detail
    assert len(deck.store.runs.runs(job="push")) == 1  # commands answer at once: no retries
    assert [n.run.id for n in deck.notices] == [run.id]
    await deck.close()


async def test_a_suspended_or_unknown_command_is_refused(decks: Decks, tmp_path: Path) -> None:
    deck = decks(catalog(tmp_path))
    now = deck.driver.clock.now()
    with deck.store.transaction() as tx:
        tx.suspensions.add_suspension(
            kind="command",
            name="push",
            reason="push provider outage",
            created_by="ops",
            created_at=now,
            until=None,
        )
        # A schedule of the same name is a different thing.
        tx.suspensions.add_suspension(
            kind="schedule", name="slow", reason="x", created_by="ops", created_at=now, until=None
        )
    with pytest.raises(RunRefused, match="command push is suspended: push provider outage"):
        deck.driver.run_command("push", argv(deck), trigger="api", requested_by="f")
    with pytest.raises(RunRefused, match="no command named 'nope'"):
        deck.driver.run_command("nope", ["true"], trigger="api", requested_by="f")
    with pytest.raises(RunRefused, match="no schedule named 'push'"):
        deck.driver.run_now("push")
    assert deck.store.runs.runs(job="push") == []
    run = deck.driver.run_command("slow", ["true"], trigger="api", requested_by="f")
    assert (await deck.wait_ended(run.id)).status == "succeeded"
    await deck.close()


async def test_a_command_run_is_adopted_after_a_restart(decks: Decks, tmp_path: Path) -> None:
    first = decks(catalog(tmp_path))
    run = first.driver.run_command(
        "push", argv(first, "--hold", str(tmp_path / "gate")), trigger="api", requested_by="g"
    )
    await first.wait_running(run.id)
    waiting = first.driver.run_command("push", argv(first), trigger="api", requested_by="h")
    await until(lambda: "waiting" in first.event_types(waiting.id), "the second to wait")
    await first.close()

    second = decks(catalog(tmp_path), load=False)
    assert second.driver.recover().adopted == [run.id]
    second.driver.load(second.applied)
    assert waiting.id in second.driver.runs.waiting  # still waiting for the pool
    (tmp_path / "gate").touch()
    for each in (run, waiting):
        ended = await second.wait_ended(each.id)
        assert (ended.kind, ended.status) == ("command", "succeeded")
    assert second.event_types(run.id) == ["created", "started", "adopted", "ended"]
    await second.close()


async def test_a_run_requested_from_another_thread_is_dispatched_in_the_drivers_loop(
    decks: Decks, tmp_path: Path
) -> None:
    deck = decks(catalog(tmp_path))
    (tmp_path / "gate").touch()
    run = await asyncio.to_thread(
        deck.driver.run_command, "push", argv(deck), trigger="api", requested_by="i"
    )
    manual = await asyncio.to_thread(deck.driver.run_now, "hog")
    for each in (run, manual):
        assert (await deck.wait_ended(each.id)).status == "succeeded"
    await deck.close()


async def test_a_command_in_a_warm_pool_is_started_by_the_pools_launcher(
    decks: Decks, tmp_path: Path
) -> None:
    text = catalog(tmp_path).replace("priority: critical", "priority: critical, warm: true")
    deck = decks(text)
    (tmp_path / "gate").touch()
    runs = [
        deck.driver.run_command(
            "push", argv(deck, "--echo", str(n)), trigger="api", requested_by="w"
        )
        for n in range(3)
    ]
    for n, run in enumerate(runs):
        ended = await deck.wait_ended(run.id)
        assert (ended.status, ended.detail["launch"]) == ("succeeded", "warm")
        assert f"echo: {n}\n" in deck.log(run.id)
        assert isinstance(ended.detail["dispatch_ms"], float)
    # Other pools start cold, as ever.
    cold = deck.driver.run_command("slow", ["true"], trigger="api", requested_by="w")
    quick = await deck.wait_ended(cold.id)
    assert quick.detail["launch"] == "cold"
    # A program that is over before its launch returns still started, on the record.
    assert quick.started_at is not None
    assert deck.event_types(cold.id) == ["created", "started", "ended"]
    # Stopped, the launcher is gone for good: reaped, not left a zombie of the engine.
    (launcher,) = deck.executor.stop_launchers()
    await until(lambda: not Path(f"/proc/{launcher}").exists(), "the launcher to be reaped")
    await deck.close()


async def test_a_program_over_before_its_start_is_recorded_has_both_in_one_commit(
    decks: Decks,
) -> None:
    """Under load the engine often gets to record a quick program's start only after the
    program and its shim are gone: then its start and its end are one commit, with
    everything each records on its own."""
    deck = decks(
        """
        version: 1
        project: quick
        commands:
          quick:
            command: ["/bin/true"]
        """
    )
    run = deck.driver.run_command("quick", ["/bin/true"], trigger="api", requested_by="q")
    await asyncio.sleep(0)  # the launch is handed to a thread (the pool is not warm)
    run_dir = deck.executor.run_dir(run.id)

    def executed(*args: Any) -> None:
        statement = str(args[2])  # (connection, cursor, statement, ...)
        if statement.lstrip().upper().startswith("UPDATE RUNS"):
            updates.append(statement)

    updates: list[str] = []
    commits = _writes_committed(deck)
    event.listen(deck.store.engine, "before_cursor_execute", executed)

    def over() -> bool:
        found = record.read(run_dir)
        info = found.shim_info()
        return (
            found.result is not None
            and info is not None
            and not is_alive(info.shim_pid, info.shim_start)
        )

    _hold_the_event_loop_until(over)
    ended = await deck.wait_ended(run.id)
    event.remove(deck.store.engine, "before_cursor_execute", executed)
    assert len(commits) == 1
    assert len(updates) == 1, "the run is written once, with its start and its end"
    assert (ended.status, ended.exit_code) == ("succeeded", 0)
    events = deck.events(run.id)
    assert [e.type for e in events] == ["created", "started", "ended"]
    assert events[1].at == events[2].at
    assert events[1].detail["status"] == "running"
    assert events[1].detail["detail"]["run_dir"] == str(run_dir)
    assert "exit_code" not in events[1].detail
    assert (events[2].detail["status"], events[2].detail["exit_code"]) == ("succeeded", 0)
    assert "run_dir" not in events[2].detail["detail"]
    assert ended.started_at == ended.ended_at
    assert ended.detail["run_dir"] == str(run_dir)
    assert ended.detail["launch"] == "cold"
    assert isinstance(ended.detail["pid"], int)
    assert {"dispatched_at", "process_started_at", "dispatch_ms", "duration_ms"} <= set(
        ended.detail
    )
    await deck.close()


def _writes_committed(deck: Deck) -> list[object]:
    """The writing transactions committed from now on (the list grows as they do)."""
    commits: list[object] = []

    def committed(connection: Connection) -> None:
        if not connection.get_execution_options().get(READ_ONLY):
            commits.append(connection)  # a writing transaction (reads commit too)

    event.listen(deck.store.engine, "commit", committed)
    return commits


def _hold_the_event_loop_until(check: Callable[[], bool], within: float = 30.0) -> None:
    """Called from the event loop: nothing else in it runs until ``check`` holds."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.01)


async def test_a_refusal_says_why_as_a_type(decks: Decks, tmp_path: Path) -> None:
    """Callers tell refusals apart by their ``why`` (and the suspension), not their text."""
    deck = decks(catalog(tmp_path))
    now = deck.driver.clock.now()
    with deck.store.transaction() as tx:
        tx.suspensions.add_suspension(
            kind="command",
            name="push",
            reason="push provider outage",
            created_by="ops",
            created_at=now,
            until=None,
        )
    with pytest.raises(RunRefused) as suspended:
        deck.driver.run_command("push", argv(deck), trigger="api", requested_by="f")
    assert suspended.value.why == "suspended"
    assert suspended.value.suspension is not None
    assert suspended.value.suspension.reason == "push provider outage"
    with pytest.raises(RunRefused) as unknown:
        deck.driver.run_command("nope", ["true"], trigger="api", requested_by="f")
    assert (unknown.value.why, unknown.value.suspension) == ("unknown", None)
    run = deck.driver.run_command("slow", ["true"], trigger="api", requested_by="f")
    await deck.wait_ended(run.id)
    with pytest.raises(CancelRefused) as ended:
        deck.driver.cancel(run.id, by="ops")
    assert ended.value.why == "ended"
    await deck.close()
