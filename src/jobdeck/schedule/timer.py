"""The scheduler's timer, a process of its own: ``python -m jobdeck.schedule.timer``.

It holds the schedules' :class:`~jobdeck.schedule.firequeue.FireQueue`, sleeps until the
earliest slot, takes the slots that are due, stamps them with the instant it decided
them and writes them to the server (the format is in :mod:`jobdeck.schedule.wire`),
which claims them in the store.

Why a process: a thread of the server's, however idle, waits for the interpreter's lock
when it wakes, and the server's other threads hold that lock while they launch runs,
record outcomes and answer requests. At tens of fires a second those waits were the
lateness. This process runs nothing but the timer, so it decides on time whatever the
server is doing; and it never waits for the server either: what the server has not
read yet waits in a buffer, and the server's messages are read meanwhile.

It reads its input until the end (the server's order to stop, or the server gone), then
writes what it has decided and exits. SIGINT and SIGTERM are ignored: a Ctrl-C in a
terminal or a supervisor stopping the service's group stops the server, which then
closes this process's input once it needs no more slots.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from jobdeck.schedule.firequeue import FireQueue
from jobdeck.schedule.wire import decode_cadences, encode_due

# Ahead of the host's other work for a CPU when it wakes: the lowest real-time priority
# where the host permits (root), else a raised niceness, else as it is (a timer that may
# not is merely less punctual on a busy host). It wakes for microseconds a slot.
TIMER_RT_PRIORITY = 1
TIMER_NICE = -10
_CHUNK = 1 << 16


def serve(inbox: int, outbox: int, now: Callable[[], datetime]) -> None:
    """Run the timer between two file descriptors until ``inbox`` ends."""
    queue = FireQueue()
    received = bytearray()
    pending = bytearray()
    os.set_blocking(outbox, False)
    while True:
        decided = now()
        for due in queue.pop_due(decided):
            pending += encode_due(due, decided)
        _send(outbox, pending)
        upcoming = queue.next_due()
        timeout = None if upcoming is None else max(0.0, (upcoming - now()).total_seconds())
        readable, _, _ = select.select([inbox], [outbox] if pending else [], [], timeout)
        if not readable:
            continue
        chunk = os.read(inbox, _CHUNK)
        if not chunk:
            break
        received += chunk
        while (end := received.find(b"\n")) >= 0:
            cadences, loaded_at = decode_cadences(bytes(received[:end]))
            del received[: end + 1]
            queue.update(cadences, loaded_at)
    os.set_blocking(outbox, True)
    while pending:
        _send(outbox, pending)


def _send(outbox: int, pending: bytearray) -> None:
    if not pending:
        return
    with contextlib.suppress(BlockingIOError):
        del pending[: os.write(outbox, pending)]


def _ahead() -> None:
    """Ask for a CPU ahead of other work when the timer wakes (see TIMER_RT_PRIORITY).
    Under the kernel's default scheduler a waking process waits, now and then, for a
    millisecond or more behind a busy one, whatever its niceness."""
    with contextlib.suppress(OSError):
        policy = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
        os.sched_setscheduler(0, policy, os.sched_param(TIMER_RT_PRIORITY))
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, TIMER_NICE)


def main() -> int:
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    _ahead()
    try:
        serve(sys.stdin.fileno(), sys.stdout.fileno(), lambda: datetime.now(UTC))
    except BrokenPipeError:
        return 0  # the server is gone: nobody is left to fire the slots
    return 0


if __name__ == "__main__":
    sys.exit(main())
