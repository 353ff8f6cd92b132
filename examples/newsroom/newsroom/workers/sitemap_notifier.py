"""Ping the search engines with the sitemap's new URLs: a singleton worker.

Only one process may ever run it (two would ping twice and get the site throttled), so
the catalog says ``singleton: true``. It gathers the URLs announced on its queue for a
few seconds, "pings" once per batch and deletes what it announced.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import boto3

GATHER_SECONDS = 5.0
stopping = False


def stop(signum: int, frame: Any) -> None:
    global stopping
    stopping = True


def main() -> None:
    signal.signal(signal.SIGTERM, stop)
    sqs = boto3.client("sqs")
    url = os.environ["JOBDECK_QUEUE_URL"]
    print(f"sitemap-notifier {os.getpid()}: the only one, consuming {url}", flush=True)
    while not stopping:
        deadline = time.monotonic() + GATHER_SECONDS
        handles: list[str] = []
        links: set[str] = set()
        while time.monotonic() < deadline and not stopping:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2)
            for message in got.get("Messages", []):
                links.add(message["Body"])
                handles.append(message["ReceiptHandle"])
        if not handles:
            continue
        print(f"pinged the search engines with {len(links)} new URLs", flush=True)
        for start in range(0, len(handles), 10):
            chunk = handles[start : start + 10]
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)],
            )
    print(f"sitemap-notifier {os.getpid()}: stopped", flush=True)


if __name__ == "__main__":
    main()
