"""The alert policy through the real driver: real runs, a fake clock where time decides,
and the notices delivered by the real notifier to a real HTTP receiver on loopback."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from jobdeck.clock import FakeClock
from jobdeck.notify import Notifier, RunNotice
from jobdeck.store.records import Run
from tests.integration.test_notify import Receiver, Request, ok_json, settings_for
from tests.integration.test_workflow_harness import T0, Deck, Decks, until

pytestmark = pytest.mark.anyio


def catalog(hook: str, ok_file: Path, policy: str) -> str:
    return f"""
        version: 1
        project: alerts
        schedules:
          backup:
            rate: 1h
            shell: "echo backing up; test -e {ok_file}"
            notify: ["webhook:{hook}"]
            notify_policy: {policy}
        """


def wiring(notifier: Notifier) -> Callable[[list[str], Run, str], None]:
    """What the application does with a notice: a RunNotice from the run, to the notifier."""

    def notify(targets: list[str], run: Run, tail: str) -> None:
        notifier.notify(targets, RunNotice.from_run(run, log_tail=tail, project="alerts"))

    return notify


async def one_run(deck: Deck, clock: FakeClock, at: timedelta) -> Run:
    clock.set(T0 + at)
    run = deck.driver.fire("backup", T0 + at)
    assert run is not None
    return await deck.wait_ended(run.id)


async def test_after_renotify_and_recovery_over_real_http(decks: Decks, tmp_path: Path) -> None:
    received: list[Request] = []

    def record(request: Request, index: int) -> tuple[int, dict[str, str], bytes]:
        received.append(request)
        return ok_json({"ok": True})

    receiver = Receiver(record)
    clock = FakeClock(T0)
    notifier = Notifier(settings_for(), clock=clock)
    ok_file = tmp_path / "ok"
    policy = "{after: 2, recovery: true, renotify: 1h}"
    try:
        deck = decks(
            catalog(f"{receiver.url}/hook", ok_file, policy), clock=clock, notify=wiring(notifier)
        )
        first = await one_run(deck, clock, timedelta(0))
        second = await one_run(deck, clock, timedelta(minutes=1))
        await until(lambda: len(received) == 1, "the notice of the second failure")
        third = await one_run(deck, clock, timedelta(minutes=2))
        fourth = await one_run(deck, clock, timedelta(minutes=61))  # 1h after the notice
        await until(lambda: len(received) == 2, "the renotice")
        ok_file.touch()
        fifth = await one_run(deck, clock, timedelta(minutes=62))
        await until(lambda: len(received) == 3, "the recovery notice")
        sixth = await one_run(deck, clock, timedelta(minutes=63))
        await notifier.aclose()
        assert [r.status for r in (first, second, third, fourth, fifth, sixth)] == [
            *["failed"] * 4,
            "succeeded",
            "succeeded",
        ]

        bodies = [r.json() for r in received]
        assert [(b["type"], b["run"]["id"]) for b in bodies] == [
            ("run.failed", second.id),
            ("run.failed", fourth.id),
            ("run.recovered", fifth.id),
        ]
        assert bodies[0]["policy"] == {
            "why": "failure 2 in a row, reaching notify_policy.after",
            "consecutive_failures": 2,
        }
        assert "backing up" in bodies[0]["log_tail"]
        assert bodies[1]["policy"]["why"] == (
            "failure 4 in a row; still failing 1h after the last notice"
        )
        assert bodies[2]["run"]["status"] == "succeeded"
        assert bodies[2]["policy"] == {
            "why": "recovered after 4 consecutive failures",
            "consecutive_failures": 0,
        }

        # Every decision is recorded, the held-back ones too, on the run and in the list.
        listed = list(reversed(deck.store.notices.notices(job="backup")))
        assert [(n.run_id, n.event, n.sent) for n in listed] == [
            (first.id, "run.failed", False),
            (second.id, "run.failed", True),
            (third.id, "run.failed", False),
            (fourth.id, "run.failed", True),
            (fifth.id, "run.recovered", True),
        ]
        assert listed[0].why == "failure 1 in a row; notify_policy.after is 2"
        assert listed[2].why == (
            "failure 3 in a row; last notice sent 1m ago, notify_policy.renotify is 1h"
        )
        assert all(n.targets == [f"webhook:{receiver.url}/hook"] for n in listed)
        assert [n.event for n in deck.store.notices.notices(run_id=third.id)] == ["run.failed"]
        assert deck.store.notices.notices(run_id=sixth.id) == []
        await deck.close()
    finally:
        await notifier.aclose()
        receiver.close()


async def test_without_a_policy_every_failure_is_sent_and_recovery_is_held_back(
    decks: Decks, tmp_path: Path
) -> None:
    sent: list[tuple[str, int]] = []

    def capture(targets: list[str], run: Run, tail: str) -> None:
        sent.append((RunNotice.from_run(run).event_type, run.id))

    clock = FakeClock(T0)
    ok_file = tmp_path / "ok"
    deck = decks(catalog("https://hooks.example/x", ok_file, "{}"), clock=clock, notify=capture)
    first = await one_run(deck, clock, timedelta(0))
    second = await one_run(deck, clock, timedelta(minutes=1))
    ok_file.touch()
    third = await one_run(deck, clock, timedelta(minutes=2))
    assert sent == [("run.failed", first.id), ("run.failed", second.id)]
    recovered = deck.store.notices.notices(run_id=third.id)
    assert [(n.event, n.sent, n.why) for n in recovered] == [
        ("run.recovered", False, "recovered after 2 consecutive failures; recovery notices are off")
    ]
    await deck.close()
