"""The one boundary between other threads and the engine's loop, and supervised tasks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from jobdeck.execute.tasks import LoopGate, Supervised


def test_a_call_from_another_thread_runs_in_the_loop_and_one_in_it_at_once() -> None:
    async def scenario() -> None:
        errors: list[BaseException] = []
        gate = LoopGate(Supervised("test", errors.append))
        gate.bind()
        loop_thread = threading.get_ident()
        seen: list[tuple[str, int]] = []

        gate.call(lambda what: seen.append((what, threading.get_ident())), "here")
        assert seen == [("here", loop_thread)]  # at once, not later
        assert gate.here()

        def from_elsewhere() -> None:
            assert not gate.here()
            gate.call(lambda what: seen.append((what, threading.get_ident())), "handed")

        await asyncio.to_thread(from_elsewhere)
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0)
        assert seen == [("here", loop_thread), ("handed", loop_thread)]
        assert errors == []

    asyncio.run(scenario())


def test_a_failure_handed_over_or_in_a_task_is_reported_not_lost() -> None:
    async def scenario() -> None:
        errors: list[BaseException] = []
        supervised = Supervised("test", errors.append)
        gate = LoopGate(supervised)
        gate.bind()

        def broken() -> None:
            raise RuntimeError("callback")

        async def failing() -> None:
            raise ValueError("task")

        await asyncio.to_thread(gate.call, broken)
        supervised.spawn(failing())
        for _ in range(100):
            if len(errors) == 2 and not supervised:
                break
            await asyncio.sleep(0)
        assert sorted(type(e).__name__ for e in errors) == ["RuntimeError", "ValueError"]
        # In the loop's own thread the caller sees the failure itself.
        with pytest.raises(RuntimeError):
            gate.call(broken)

    asyncio.run(scenario())


def test_cancel_ends_every_task() -> None:
    async def scenario() -> None:
        supervised = Supervised("test")
        for _ in range(3):
            supervised.spawn(asyncio.sleep(3600))
        assert len(supervised) == 3
        await supervised.cancel()
        await asyncio.sleep(0)
        assert len(supervised) == 0

    asyncio.run(scenario())
