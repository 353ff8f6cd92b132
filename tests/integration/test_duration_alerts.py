"""Duration alerts through the real driver: real runs, a fake clock where time decides,
and the notices delivered by the real notifier to a real HTTP receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobdeck.clock import FakeClock
from jobdeck.notify import Notifier
from jobdeck.store import Store
from tests.integration.test_alert_policy import wiring
from tests.integration.test_notify import Receiver, Request, ok_json, settings_for
from tests.integration.test_workflow_harness import T0, Decks, until

pytestmark = pytest.mark.anyio


@pytest.fixture
def hook() -> Iterator[tuple[Receiver, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []

    def record(request: Request, index: int) -> tuple[int, dict[str, str], bytes]:
        bodies.append(request.json())
        return ok_json({"ok": True})

    receiver = Receiver(record)
    yield receiver, bodies
    receiver.close()


def history(store: Store, job: str, durations: list[timedelta]) -> None:
    """Successful runs of ``job`` a day before, as an earlier week of the engine left them."""
    for n, took in enumerate(durations):
        start = T0 - timedelta(days=1, hours=n)
        with store.transaction() as tx:
            run = tx.runs.create_run(
                job=job, kind="schedule", trigger="schedule", status="running", created_at=start
            )
            tx.runs.update_run(run.id, at=start, event="started", started_at=start)
            tx.runs.update_run(
                run.id,
                at=start + took,
                event="ended",
                status="succeeded",
                ended_at=start + took,
                exit_code=0,
            )


def catalog(hook: str, alerts: str, command: str, extra: str = "") -> str:
    return f"""
        version: 1
        project: alerts
        pools:
          one: {{max_concurrency: 1}}
        schedules:
          backup:
            rate: 1d
            pool: one
            command: {command}
            notify: ["webhook:{hook}"]
            alerts: {alerts}
{extra}
        """


async def test_slow_notifies_once_while_running_with_the_learned_threshold(
    decks: Decks, tmp_path: Path, hook: tuple[Receiver, list[dict[str, Any]]]
) -> None:
    receiver, bodies = hook
    clock = FakeClock(T0)
    notifier = Notifier(settings_for(), clock=clock)
    gate = tmp_path / "gate"
    deck = decks(
        catalog(f"{receiver.url}/hook", "{slow: auto}", f'JOB, "--hold", "{gate}"]'),
        clock=clock,
        notify=wiring(notifier),
    )
    history(deck.store, "backup", [timedelta(minutes=m) for m in (9, 10, 10, 11, 10)])
    run = deck.driver.fire("backup", T0)
    assert run is not None
    await deck.wait_running(run.id)
    clock.advance(timedelta(minutes=19))  # the threshold: 2 x the median, 20m
    await until(lambda: deck.store.notices.notices(run_id=run.id) == [], "a first look", 2.5)
    assert bodies == []
    clock.advance(timedelta(minutes=2))
    await until(lambda: len(bodies) == 1, "the slow notice")
    clock.advance(timedelta(minutes=10))  # still running, much later: no second notice
    await until(lambda: len(deck.store.notices.notices(run_id=run.id)) == 1, "one notice")
    gate.touch()
    ended = await deck.wait_ended(run.id)
    assert ended.status == "succeeded"
    await notifier.aclose()
    assert len(bodies) == 1
    body = bodies[0]
    assert body["type"] == "run.slow"
    assert body["run"]["id"] == run.id
    assert body["run"]["status"] == "running"
    alert = body["alert"]
    assert alert["alert"] == "slow"
    assert alert["value_seconds"] >= 21 * 60
    assert (alert["threshold_seconds"], alert["threshold"], alert["source"]) == (
        1200.0,
        "20m",
        "auto",
    )
    assert alert["how"] == "auto: 2 x the median (10m) of the last 5 successful runs"
    assert f"run {run.id} started" in body["log_tail"]
    [notice] = deck.store.notices.notices(run_id=run.id)
    assert (notice.event, notice.stream, notice.sent) == ("run.slow", "duration", True)
    assert notice.detail["threshold"] == "20m"
    await deck.close()


async def test_fast_notifies_a_suspiciously_quick_success(
    decks: Decks, hook: tuple[Receiver, list[dict[str, Any]]]
) -> None:
    receiver, bodies = hook
    clock = FakeClock(T0)
    notifier = Notifier(settings_for(), clock=clock)
    deck = decks(
        catalog(f"{receiver.url}/hook", "{fast: auto}", "JOB]"),
        clock=clock,
        notify=wiring(notifier),
    )
    history(deck.store, "backup", [timedelta(minutes=50)] * 4)
    quick = deck.driver.fire("backup", T0)
    assert quick is not None
    assert (await deck.wait_ended(quick.id)).status == "succeeded"
    # Four successful runs are too few to learn from: nothing is said.
    assert deck.store.notices.notices(run_id=quick.id) == []
    history(deck.store, "backup", [timedelta(minutes=50)] * 2)
    second = deck.driver.fire("backup", T0 + timedelta(days=1))
    assert second is not None
    assert (await deck.wait_ended(second.id)).status == "succeeded"
    await until(lambda: len(bodies) == 1, "the fast notice")
    await notifier.aclose()
    body = bodies[0]
    assert (body["type"], body["run"]["id"], body["run"]["status"]) == (
        "run.fast",
        second.id,
        "succeeded",
    )
    assert body["alert"]["threshold"] == "12m30s"
    assert body["alert"]["how"] == (
        "auto: a quarter of the median (50m) of the last 7 successful runs"
    )
    assert body["alert"]["value_seconds"] < 60
    await deck.close()


async def test_not_started_by_notifies_a_slot_still_waiting_for_its_pool(
    decks: Decks, tmp_path: Path, hook: tuple[Receiver, list[dict[str, Any]]]
) -> None:
    receiver, bodies = hook
    clock = FakeClock(T0)
    notifier = Notifier(settings_for(), clock=clock)
    gate = tmp_path / "gate"
    blocker = f"""
          blocker:
            rate: 1d
            pool: one
            command: JOB, "--hold", "{gate}"]
"""
    deck = decks(
        catalog(f"{receiver.url}/hook", "{not_started_by: 5m}", "JOB]", blocker),
        clock=clock,
        notify=wiring(notifier),
    )
    held = deck.driver.fire("blocker", T0)
    assert held is not None
    await deck.wait_running(held.id)
    waiting = deck.driver.fire("backup", T0)
    assert waiting is not None
    clock.advance(timedelta(minutes=4))
    await until(lambda: deck.run(waiting.id).status == "pending", "the slot to wait", 2.5)
    assert bodies == []
    clock.advance(timedelta(minutes=2))
    await until(lambda: len(bodies) == 1, "the not-started notice")
    gate.touch()
    assert (await deck.wait_ended(waiting.id)).status == "succeeded"
    await deck.wait_ended(held.id)
    await notifier.aclose()
    body = bodies[0]
    assert (body["type"], body["run"]["id"], body["run"]["status"]) == (
        "run.not_started",
        waiting.id,
        "pending",
    )
    assert body["alert"]["threshold"] == "5m"
    assert body["alert"]["source"] == "catalog"
    assert body["alert"]["value_seconds"] >= 6 * 60
    # It started late, but it was said once: no second notice at its start.
    assert len(deck.store.notices.notices(run_id=waiting.id)) == 1
    await deck.close()


async def test_a_restarted_engine_does_not_say_slow_twice(
    decks: Decks, tmp_path: Path, hook: tuple[Receiver, list[dict[str, Any]]]
) -> None:
    receiver, bodies = hook
    clock = FakeClock(T0)
    notifier = Notifier(settings_for(), clock=clock)
    gate = tmp_path / "gate"
    text = catalog(f"{receiver.url}/hook", "{slow: 5m}", f'JOB, "--hold", "{gate}"]')
    first = decks(text, clock=clock, notify=wiring(notifier))
    run = first.driver.fire("backup", T0)
    assert run is not None
    await first.wait_running(run.id)
    clock.advance(timedelta(minutes=6))
    await until(lambda: len(bodies) == 1, "the slow notice")
    # The engine goes away without stopping anything; the next one adopts the run.
    await first.close()
    second = decks(text, load=False, clock=clock, notify=wiring(notifier))
    assert second.driver.recover().adopted == [run.id]
    second.driver.load(second.applied)
    clock.advance(timedelta(minutes=10))
    # Looks of the new engine at the still-running, long-slow run: nothing new.
    watch = second.driver.dispatcher.outcomes.watch
    for _ in range(3):
        watch.sweep()
    assert len(second.store.notices.notices(run_id=run.id)) == 1
    gate.touch()
    assert (await second.wait_ended(run.id)).status == "succeeded"
    await notifier.aclose()
    assert [b["type"] for b in bodies] == ["run.slow"]
    await second.close()
