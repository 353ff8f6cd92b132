"""`jobdeck migrate NAME`: the monitor becomes the schedule in the catalog file, the
rest of the file untouched, and the runs recorded under the monitor stay its history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobdeck.store import open_store
from tests.acceptance.conftest import Jobdeck

T0 = datetime(2026, 3, 8, 3, 0, tzinfo=UTC)

CATALOG = """\
version: 1
project: box
timezone: "UTC"

schedules:
  # the first one
  other:
    rate: 1h
    command: ["true"]

# watched jobs
monitors:
  # line 4: 0 3 * * * /usr/local/bin/backup --full
  backup:
    description: "the backup"
    cron: "0 3 * * *"
    grace: 30m
    timeout: 2h
    notify_policy: {after: 2, recovery: true}
    shell: "/usr/local/bin/backup --full >> /var/log/backup.log 2>&1"
    env: {A: "1"}

  # line 5: */5 * * * * echo hi
  echo:
    cron: "*/5 * * * *"
    shell: "echo hi"
# the end
"""

MIGRATED = """\
version: 1
project: box
timezone: "UTC"

schedules:
  # the first one
  other:
    rate: 1h
    command: ["true"]
  # line 4: 0 3 * * * /usr/local/bin/backup --full
  backup:
    description: "the backup"
    cron: "0 3 * * *"
    shell: "/usr/local/bin/backup --full >> /var/log/backup.log 2>&1"
    timeout: "2h"
    env: {"A": "1"}
    notify_policy: {"after": 2, "recovery": true}

# watched jobs
monitors:
  # line 5: */5 * * * * echo hi
  echo:
    cron: "*/5 * * * *"
    shell: "echo hi"
# the end
"""


def test_migrate_moves_the_monitor_and_keeps_its_history(jobdeck: Jobdeck, workdir: Path) -> None:
    (workdir / "jobdeck.yaml").write_text(CATALOG)
    assert jobdeck("apply", "--yes").code == 0
    store = open_store(None, state_dir=workdir / ".jobdeck")
    with store.transaction() as tx:
        for day in range(3):
            at = T0 + timedelta(days=day)
            run = tx.runs.create_run(
                job="backup", kind="monitor", trigger="ping", status="pending", created_at=at
            )
            tx.runs.update_run(run.id, at=at, event="started", status="running", started_at=at)
            tx.runs.update_run(
                run.id,
                at=at + timedelta(minutes=40),
                event="ended",
                status="succeeded",
                ended_at=at + timedelta(minutes=40),
                exit_code=0,
            )
    store.close()

    moved = jobdeck("migrate", "backup")
    assert moved.code == 0, moved.err
    assert "remove the job's line from the crontab" in moved.out
    assert (workdir / "jobdeck.yaml").read_text() == MIGRATED
    plan = jobdeck("plan")
    assert "backup" in plan.out
    assert jobdeck("apply", "--yes").code == 0

    history = jobdeck("runs", "backup", "--json")
    assert history.code == 0, history.err
    assert [(r["kind"], r["status"]) for r in history.json()] == [("monitor", "succeeded")] * 3
    status = jobdeck("status", "--json").json()
    assert [s["name"] for s in status["schedules"]] == ["other", "backup"]
    assert [m["name"] for m in status["monitors"]] == ["echo"]

    again = jobdeck("migrate", "backup")
    assert again.code == 2
    assert "no monitor named 'backup'" in again.err
    bare = jobdeck("migrate", "nothing")
    assert "monitors: echo" in bare.err


def test_a_monitor_without_its_command_is_not_migrated(jobdeck: Jobdeck, workdir: Path) -> None:
    text = 'version: 1\nproject: box\nmonitors:\n  backup:\n    cron: "0 3 * * *"\n'
    (workdir / "jobdeck.yaml").write_text(text)
    refused = jobdeck("migrate", "backup")
    assert refused.code == 2
    assert "has no 'shell'" in refused.err
    assert (workdir / "jobdeck.yaml").read_text() == text
