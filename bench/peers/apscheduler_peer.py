"""The APScheduler 3 peer of the scheduler benchmark: the same interval schedules, each
running the same trivial program, lateness measured at job submission.

    python bench/peers/apscheduler_peer.py '{"periods_ms": [...], "window": 30}'

Prints {"lateness_ms": [...]} as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def trivial() -> None:
    subprocess.run(["/bin/true"], check=False)


def main() -> None:
    config = json.loads(sys.argv[1])
    lateness: list[float] = []
    lock = threading.Lock()

    def submitted(event: JobSubmissionEvent) -> None:
        now = datetime.now(UTC)
        with lock:
            for nominal in event.scheduled_run_times:
                lateness.append((now - nominal).total_seconds() * 1000)

    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(64)},
        job_defaults={"coalesce": False, "max_instances": 1000, "misfire_grace_time": 3600},
        timezone=UTC,
    )
    scheduler.add_listener(submitted, EVENT_JOB_SUBMITTED)
    for i, period in enumerate(config["periods_ms"]):
        trigger = IntervalTrigger(seconds=period / 1000, start_date=EPOCH, timezone=UTC)
        scheduler.add_job(trivial, trigger, id=f"s{i}")
    scheduler.start()  # an interval trigger's first fire is its first slot after now
    time.sleep(config["window"])
    scheduler.shutdown(wait=True)
    with lock:
        print(json.dumps({"lateness_ms": lateness}))


if __name__ == "__main__":
    main()
