"""How long a backfill of 1,000 slots (the most one call takes) holds the request, against
a real ``jobdeck serve``: the dry run (compute the slots, read the claims) and the real
one (claim each slot, record each run and the audit entry in one transaction, queue the
runs).

    python bench/backfill_bench.py [--store postgresql://...] [--calls 3]

Prints {"dry_run_ms": [...], "backfill_ms": [...], "store": ...} as JSON: one number per
call, each call a fresh range of 1,000 slots of a one-minute schedule (the runs queue
behind each other; the server is stopped when the calls are done).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

CATALOG = """\
version: 1
project: backfillbench
schedules:
  minutely:
    rate: 1m
    command: ["true"]
    timeout: 60s
"""
SLOTS = int(os.environ.get("SLOTS", "1000"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default=None, help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--calls", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "jobdeck.yaml").write_text(CATALOG)
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
        env["JOBDECK_STATE_DIR"] = str(root / "state")
        if options.store:
            env["JOBDECK_STORE"] = options.store
        port = free_port()
        base = [sys.executable, "-m", "jobdeck"]
        subprocess.run(
            [*base, "apply", "--yes"], cwd=root, env=env, check=True, capture_output=True
        )
        server = subprocess.Popen(
            [*base, "serve", "--port", str(port), "--sqs-port", "0", "--isolation", "rlimit"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("the server did not start")
                    time.sleep(0.1)
                start = datetime(2026, 1, 1, tzinfo=UTC)
                dry: list[float] = []
                real: list[float] = []
                for call in range(options.calls):
                    first = start + timedelta(minutes=SLOTS * call)
                    body = {
                        "from": first.isoformat(),
                        "to": (first + timedelta(minutes=SLOTS - 1)).isoformat(),
                    }
                    for dry_run, into in ((True, dry), (False, real)):
                        began = time.perf_counter()
                        answer = client.post(
                            "/api/v1/schedules/minutely/backfill",
                            json={**body, "dry_run": dry_run},
                        )
                        into.append(round((time.perf_counter() - began) * 1000, 1))
                        assert answer.status_code in (200, 201), answer.text
                        assert len(answer.json()["slots"]) == SLOTS
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    shown = {"store": "postgresql" if options.store else "sqlite", "slots": SLOTS}
    print(json.dumps({**shown, "dry_run_ms": dry, "backfill_ms": real}))


if __name__ == "__main__":
    main()
