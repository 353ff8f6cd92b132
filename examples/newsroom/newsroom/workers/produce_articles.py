"""Enqueue newly published articles for indexing: the demo's stand-in for the CMS.

Plain boto3, configured by the environment as on AWS: the queue is found by its name
(``FEED_QUEUE``; on AWS the project-prefixed name), the endpoint, region and credentials
come from the usual ``AWS_*`` variables (jobdeck sets them for its own endpoint).
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from typing import Any

import boto3

SECTIONS = ["politics", "business", "sports", "culture", "science", "world"]


def main() -> None:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=os.environ.get("FEED_QUEUE", "feed-index"))["QueueUrl"]
    count = random.randint(5, 40)  # some minutes are busier than others
    articles = [
        {
            "id": str(uuid.uuid4()),
            "section": random.choice(SECTIONS),
            "title": f"Article {random.randint(1000, 9999)}",
            "published_at": time.time(),
        }
        for _ in range(count)
    ]
    for start in range(0, count, 10):  # SendMessageBatch takes at most 10
        batch = articles[start : start + 10]
        entries: list[Any] = [
            {"Id": str(i), "MessageBody": json.dumps(a)} for i, a in enumerate(batch)
        ]
        sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if sent.get("Failed"):
            raise SystemExit(f"produce: {len(sent['Failed'])} articles were refused: {sent}")
    print(f"produce: enqueued {count} articles to {url}", flush=True)


if __name__ == "__main__":
    main()
