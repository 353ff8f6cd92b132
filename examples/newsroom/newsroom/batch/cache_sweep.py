"""Sweep stale entries from the cache: the demo's misbehaving batch.

Most runs succeed; some fail with an error, and now and then one hangs until its
timeout stops it, the way the real one did when the cache was slow.
"""

from __future__ import annotations

import random
import sys
import time


def main() -> None:
    luck = random.random()
    print("cache-sweep: scanning keys", flush=True)
    if luck < 0.15:
        print("cache-sweep: the cache stopped answering; waiting...", flush=True)
        time.sleep(3600)  # the timeout ends this
    if luck < 0.35:
        print("cache-sweep: error: connection reset by peer", file=sys.stderr, flush=True)
        sys.exit(1)
    time.sleep(random.uniform(0.2, 1.0))
    print(f"cache-sweep: removed {random.randint(10, 500)} stale keys", flush=True)


if __name__ == "__main__":
    main()
