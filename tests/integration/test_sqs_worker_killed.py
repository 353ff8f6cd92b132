"""A worker killed mid-message loses nothing: the message comes back after its
visibility timeout, to the next worker, with its receive count showing the first try."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from jobdeck.queues.catalog import worker_environment
from tests.integration.sqs_harness import SqsServer, receive_all

# Plain boto3 worker code, configured only by the environment jobdeck gives workers.
WORKER = textwrap.dedent(
    """
    import os, sys, time
    import boto3

    sqs = boto3.client("sqs")
    url = os.environ["JOBDECK_QUEUE_URL"]
    while True:
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)
        for message in got.get("Messages", []):
            print("working on", message["Body"], flush=True)
            time.sleep(3600)  # killed here, before it deletes the message
    """
)


def test_a_worker_killed_mid_message_loses_nothing(sqs_server: SqsServer, tmp_path: Path) -> None:
    sqs = sqs_server.client()
    url = sqs.create_queue(QueueName="killed-worker", Attributes={"VisibilityTimeout": "2"})[
        "QueueUrl"
    ]
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **worker_environment(sqs_server.endpoint, "killed-worker"),
    }
    worker = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        sqs.send_message(QueueUrl=url, MessageBody="article-42")
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "working on article-42"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        if worker.stdout is not None:
            worker.stdout.close()
    (message,) = receive_all(sqs, url, WaitTimeSeconds=20, MessageSystemAttributeNames=["All"])
    assert message["Body"] == "article-42"
    assert message["Attributes"]["ApproximateReceiveCount"] == "2"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
