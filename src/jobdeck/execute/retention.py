"""Log retention: run folders (log, spec, result) of ended runs are removed after a while.

Failures are kept longer than successes: they are what someone comes back to read. Run
records in the store are never removed, only the folders on disk; a folder whose run is
still active, or unknown to the store, is never touched.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from jobdeck.store.records import TERMINAL_STATUSES, Run

log = logging.getLogger(__name__)

KEEP_SUCCEEDED = timedelta(days=14)
KEEP_OTHERS = timedelta(days=90)  # failed, timed out, lost, cancelled, skipped


class RunLookup(Protocol):
    def run(self, run_id: int) -> Run | None: ...


@dataclass
class LogRetention:
    runs_dir: Path
    store: RunLookup
    keep_succeeded: timedelta = KEEP_SUCCEEDED
    keep_others: timedelta = KEEP_OTHERS

    def expired(self, run: Run, now: datetime) -> bool:
        if run.status not in TERMINAL_STATUSES or run.ended_at is None:
            return False
        keep = self.keep_succeeded if run.status == "succeeded" else self.keep_others
        return now - run.ended_at > keep

    def sweep(self, now: datetime) -> int:
        """Remove the folders of runs past their retention; returns how many."""
        if not self.runs_dir.is_dir():
            return 0
        removed = 0
        for folder in self.runs_dir.iterdir():
            if not folder.name.isdigit() or not folder.is_dir():
                continue
            run = self.store.run(int(folder.name))
            if run is None or not self.expired(run, now):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        return removed
