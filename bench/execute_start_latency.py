"""Start latency of a run through the cold path: launch() -> the program is running.

Measures, per run, the time from calling :func:`jobdeck.execute.launch.launch` until it
returns (the shim has spawned the program) and until the program itself has written its
first byte. Uses cgroups when the host allows it, per-process limits otherwise.

    python bench/execute_start_latency.py [RUNS]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from jobdeck.catalog.model import Pool
from jobdeck.execute.launch import launch, result
from jobdeck.execute.pools import PoolManager
from jobdeck.execute.spec import RunSpec


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    manager = PoolManager(
        f"bench-{uuid.uuid4().hex[:8]}",
        {"tools": Pool.model_validate({"memory": "256MiB", "priority": "critical"})},
    )
    print(f"isolation: {manager.isolation}")
    if manager.warning:
        print(f"warning: {manager.warning}")
    returned, first_output = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            run_dir = Path(tmp) / f"r{i}"
            marker = run_dir / "started"
            spec = RunSpec(
                run_id=f"r{i}",
                argv=("/bin/sh", "-c", f": > {marker}"),
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                workdir=tmp,
                timeout=30,
                isolation=manager.placement("tools", f"r{i}"),
            )
            begun = time.monotonic()
            launch(run_dir, spec)
            returned.append(time.monotonic() - begun)
            while not marker.exists():
                time.sleep(0.0005)
            first_output.append(time.monotonic() - begun)
            while result(run_dir) is None:
                time.sleep(0.005)
        time.sleep(0.2)  # let the last shims leave their groups
        manager.reap(min_age=0)
        manager.teardown()
    for name, values in (("launch() returned", returned), ("program ran", first_output)):
        ms = sorted(v * 1000 for v in values)
        print(
            f"{name:>18}: median {statistics.median(ms):6.1f} ms, "
            f"p90 {ms[int(len(ms) * 0.9) - 1]:6.1f} ms, max {ms[-1]:6.1f} ms"
        )


if __name__ == "__main__":
    main()
