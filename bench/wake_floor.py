"""The machine's floor for a timer: how late a process that does nothing but sleep to
deadlines wakes up, at the priority jobdeck's timer asks for.

    python bench/wake_floor.py SECONDS

Sleeps with ``select`` to a deadline every 17.3 ms (a period that falls in step with
none of the benchmark's schedules) and prints {"lateness_ms": [...]} as JSON. The
scheduler benchmark runs it beside jobdeck and beside APScheduler, so that each one's
lateness can be read against what the machine allowed in the same seconds. On a virtual
machine most of it is the time the host takes to run an idle virtual CPU again.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import time

PERIOD = 0.0173


def main() -> None:
    window = float(sys.argv[1])
    with contextlib.suppress(OSError):  # as jobdeck's timer: real-time where permitted
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    lateness: list[float] = []
    deadline = time.time()
    end = deadline + window
    while deadline < end:
        deadline += PERIOD
        delay = deadline - time.time()
        if delay > 0:
            select.select([], [], [], delay)
        lateness.append((time.time() - deadline) * 1000)
    print(json.dumps({"lateness_ms": lateness}))


if __name__ == "__main__":
    main()
