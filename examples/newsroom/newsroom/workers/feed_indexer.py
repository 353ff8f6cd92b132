"""Index articles from the feed queue, then tell the sitemap notifier about them.

A resident worker: it long-polls ``JOBDECK_QUEUE_URL`` (set by jobdeck locally and by the
AWS target on ECS), indexes each article, announces its URL on ``SITEMAP_QUEUE`` and
deletes the message only once done, so a crash mid-message loses nothing: the message
comes back after its visibility timeout. On SIGTERM it finishes the batch in hand and
exits within its ``stop_grace``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from typing import Any

import boto3

stopping = False


def stop(signum: int, frame: Any) -> None:
    global stopping
    stopping = True


def main() -> None:
    signal.signal(signal.SIGTERM, stop)
    sqs = boto3.client("sqs")
    url = os.environ["JOBDECK_QUEUE_URL"]
    sitemap_queue = os.environ.get("SITEMAP_QUEUE")
    sitemap = sqs.get_queue_url(QueueName=sitemap_queue)["QueueUrl"] if sitemap_queue else None
    print(f"feed-indexer {os.getpid()}: consuming {url}", flush=True)
    while not stopping:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=5)
        messages = got.get("Messages", [])
        for message in messages:
            article = json.loads(message["Body"])
            time.sleep(random.uniform(0.05, 0.3))  # tokenizing, writing the search index
            print(f"indexed {article['id']} ({article['section']})", flush=True)
            if sitemap is not None:
                link = f"https://news.example/{article['section']}/{article['id']}"
                sqs.send_message(QueueUrl=sitemap, MessageBody=link)
        if messages:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
    print(f"feed-indexer {os.getpid()}: stopped", flush=True)


if __name__ == "__main__":
    main()
