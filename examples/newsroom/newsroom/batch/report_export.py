"""Export the weekly report: loads everything into memory, more than its limit allows.

In the demo this batch is killed by its own memory limit (status failed, reason
oom_killed) while the breaking push in the critical tools pool is untouched.
"""

from __future__ import annotations

import time


def main() -> None:
    print("report-export: loading the whole archive into memory", flush=True)
    chunks = []
    for megabytes in range(1, 2049):
        chunks.append(bytearray(1024 * 1024))
        if megabytes % 64 == 0:
            print(f"  {megabytes} MiB loaded", flush=True)
            time.sleep(0.05)
    print("report-export: written", flush=True)


if __name__ == "__main__":
    main()
