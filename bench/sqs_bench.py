"""SQS benchmark for `bench/run.py`: boto3 send / receive / delete in batches of 10 from
several threads against the endpoint of a real `jobdeck serve` (durable SQLite store),
and in the same run against moto's server mode. The load itself is `bench/sqs.py`'s
(which also runs on its own, with more options)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import sqs
from harness import JobdeckServer, cpu_seconds, free_port, percentile

CATALOG = "version: 1\nproject: bench\n"
PRODUCERS = 4
CONSUMERS = 4
# moto slows down as its queue grows (each receive walks every message), so it gets the
# same small load in both runs: with 5,000 messages it did not finish within 10 minutes.
MOTO_MESSAGES = 1_000


def run(quick: bool) -> dict[str, float]:
    messages = 4_000 if quick else 20_000
    with JobdeckServer(CATALOG, sqs=True) as server:
        sqs.wait_for_port(server.sqs_port, _process(server))
        sqs.drive(server.sqs_port, 500, PRODUCERS, CONSUMERS)  # warm-up
        before = cpu_seconds(server.pid)
        elapsed, tally = sqs.drive(server.sqs_port, messages, PRODUCERS, CONSUMERS)
        server_cpu = cpu_seconds(server.pid) - before
    jobdeck_rate = tally.deleted / elapsed
    calls = [v * 1000 for values in tally.latencies.values() for v in values]
    moto_rate = _moto(MOTO_MESSAGES)
    return {
        "jobdeck_msgs_per_s": jobdeck_rate,
        "moto_msgs_per_s": moto_rate,
        "jobdeck_p99_ms": percentile(calls, 0.99),
        "jobdeck_p50_ms": percentile(calls, 0.5),
        "jobdeck_server_cpu_us_per_msg": server_cpu / max(tally.deleted, 1) * 1e6,
        "ratio_to_moto": jobdeck_rate / moto_rate if moto_rate else 0.0,
    }


def _process(server: JobdeckServer) -> subprocess.Popen[bytes]:
    assert server.process is not None
    return server.process


def _moto(messages: int) -> float:
    port = free_port()
    process = sqs.start_moto(port)
    try:
        sqs.wait_for_port(port, process)
        sqs.drive(port, 200, PRODUCERS, CONSUMERS)
        elapsed, tally = sqs.drive(port, messages, PRODUCERS, CONSUMERS)
        return tally.deleted / elapsed
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
