"""Is a worker process confirmed gone? The question a singleton's lease waits on.

A lease is given back only when nothing of its holder can still run: its shim wrote a
result (the shim writes it only once the program and everything it started are gone),
or no shim, program or process of its group is alive any more.
"""

from __future__ import annotations

import time
from pathlib import Path

from jobdeck.execute import record
from jobdeck.execute.proc import group_alive, is_alive
from jobdeck.execute.spec import SPEC_FILE

# A shim records itself within moments of its launch; a spec older than this without a
# shim record means the launch died before the shim did anything.
LAUNCH_SETTLE_S = 30.0


def process_gone(run_dir: Path) -> bool:
    found = record.read(run_dir)
    if found.result is not None:
        return True
    info = found.shim_info()
    if info is None:
        if found.spec is None:
            return True  # never launched
        # The record's (or an earlier version's spec file's) age: when it was written.
        path = run_dir / record.RECORD_FILE
        if not path.exists():
            path = run_dir / SPEC_FILE
        try:
            return time.time() - path.stat().st_mtime > LAUNCH_SETTLE_S
        except FileNotFoundError:
            return True
    if is_alive(info.shim_pid, info.shim_start):
        return False
    if info.child_pid is not None and is_alive(info.child_pid, info.child_start):
        return False
    return not (info.pgid is not None and group_alive(info.pgid))
