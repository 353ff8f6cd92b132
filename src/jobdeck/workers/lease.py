"""Is a worker process confirmed gone? The question a singleton's lease waits on.

A lease is given back only when nothing of its holder can still run: its shim wrote a
result (the shim writes it only once the program and everything it started are gone),
or no shim, program or process of its group is alive any more.
"""

from __future__ import annotations

import time
from pathlib import Path

from jobdeck.execute.launch import shim_info
from jobdeck.execute.proc import group_alive, is_alive
from jobdeck.execute.spec import RESULT_FILE, SPEC_FILE

# A shim records itself within moments of its launch; a spec older than this without a
# shim record means the launch died before the shim did anything.
LAUNCH_SETTLE_S = 30.0


def process_gone(run_dir: Path) -> bool:
    if (run_dir / RESULT_FILE).exists():
        return True
    info = shim_info(run_dir)
    if info is None:
        spec = run_dir / SPEC_FILE
        if not spec.exists():
            return True  # never launched
        return time.time() - spec.stat().st_mtime > LAUNCH_SETTLE_S
    if is_alive(info.shim_pid, info.shim_start):
        return False
    if info.child_pid is not None and is_alive(info.child_pid, info.child_start):
        return False
    return not (info.pgid is not None and group_alive(info.pgid))
