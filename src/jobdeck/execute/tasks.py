"""Supervised work in the engine's event loop: tasks and loop callbacks that report a
failure instead of losing it.

The run driver and the worker supervisor each hold one :class:`Supervised`: a task or a
callback of theirs that fails is logged and handed to ``on_error``, which stops the
server (a driver that cannot record outcomes must not limp on). :class:`LoopGate` is
the one place where calls from other threads (the scheduler's, the HTTP side's worker
threads) cross into the engine's loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)

OnError = Callable[[BaseException], None]


class Supervised:
    """The tasks of one part of the engine (``what`` names it in the log), and its
    guarded callbacks."""

    def __init__(self, what: str, on_error: OnError | None = None) -> None:
        self.what = what
        self.on_error = on_error
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task of the running loop, kept until it ends."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("%s task failed", self.what, exc_info=error)
            if self.on_error:
                self.on_error(error)

    def guarded(self, call: Callable[..., None], *args: Any) -> None:
        """``call(*args)``, a failure reported like a task's: for callbacks of the loop."""
        try:
            call(*args)
        except Exception as exc:
            log.exception("%s callback failed", self.what)
            if self.on_error:
                self.on_error(exc)

    def __iter__(self) -> Iterator[asyncio.Task[None]]:
        return iter(list(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel(self) -> None:
        """Cancel every task and wait for them to end."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class LoopGate:
    """Hands calls made in other threads to the engine's event loop, where the state of
    the runs (queues, timers, tasks) lives; a call made in the loop's thread runs at once.
    Everything behind the gate may assume the loop's thread."""

    def __init__(self, supervised: Supervised) -> None:
        self._supervised = supervised
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
        """Remember the running loop as the engine's."""
        self._loop = asyncio.get_running_loop()

    def here(self) -> bool:
        """True in the loop's thread (or before there is a loop)."""
        if self._loop is None:
            return True
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def call(self, call: Callable[..., None], *args: Any) -> None:
        """``call(*args)`` now in the loop's thread; from another thread, handed to the
        loop (guarded: a failure there stops the engine, not the caller's request)."""
        if self.here():
            call(*args)
            return
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._supervised.guarded, call, *args)
