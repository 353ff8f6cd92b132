"""`jobdeck notices`: every notice decided, sent or held back, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobdeck.store import Notice, open_store
from tests.acceptance.conftest import Jobdeck

T0 = datetime(2026, 3, 8, 3, 0, tzinfo=UTC)


def test_notices_lists_sent_and_held_back_with_why(jobdeck: Jobdeck, workdir: Path) -> None:
    store = open_store(None, state_dir=workdir / ".jobdeck")
    with store.transaction() as tx:
        tx.notices.record_notice(
            Notice(
                at=T0,
                job="backup",
                kind="schedule",
                event="run.failed",
                stream="failure",
                sent=False,
                why="failure 1 in a row; notify_policy.after is 3",
                run_id=7,
                streak=1,
                targets=["slack:#ops"],
            )
        )
        tx.notices.record_notice(
            Notice(
                at=T0 + timedelta(minutes=5),
                job="other",
                kind="schedule",
                event="run.slow",
                stream="duration",
                sent=True,
                why="still running after 21m, over the threshold of 20m (alerts.slow: 20m)",
                run_id=8,
            )
        )
    store.close()

    shown = jobdeck("notices")
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert lines[0].split() == ["AT", "JOB", "EVENT", "NOTICE", "RUN", "WHY"]
    assert "run.slow" in lines[1]
    assert "sent" in lines[1]
    assert "held back" in lines[2]
    assert "notify_policy.after is 3" in lines[2]

    only = jobdeck("notices", "backup", "--json")
    assert only.code == 0, only.err
    [item] = only.json()
    assert (item["job"], item["event"], item["sent"], item["run_id"]) == (
        "backup",
        "run.failed",
        False,
        7,
    )
    assert item["at"].startswith("2026-03-08T03:00:00")
    assert item["targets"] == ["slack:#ops"]
