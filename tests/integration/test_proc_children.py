"""``has_children`` asks the kernel whether the process has a child, alive or ended and not
yet reaped, without reaping it: the shim's cheap check before it scans ``/proc``."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import os, sys, time
sys.path[:0] = {path!r}
from jobdeck.execute.proc import has_children
print("none", has_children(), flush=True)
pid = os.fork()
if pid == 0:
    time.sleep(0.3)
    os._exit(0)
print("alive", has_children(), flush=True)
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
        break
    time.sleep(0.01)
print("ended", has_children(), flush=True)
print("still", has_children(), flush=True)  # WNOWAIT: the first look reaped nothing
os.waitpid(pid, 0)
print("reaped", has_children(), flush=True)
"""


def test_has_children_sees_live_and_unreaped_children_and_reaps_nothing() -> None:
    # In a fresh interpreter: the test process may have children of its own.
    probe = PROBE.format(path=sys.path)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    seen = dict(line.split() for line in done.stdout.splitlines())
    assert seen == {
        "none": "False",
        "alive": "True",
        "ended": "True",
        "still": "True",
        "reaped": "False",
    }
