"""The AWS CLI, unchanged, against the endpoint: only ``--endpoint-url`` differs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sqs_harness import REGION, SqsServer

AWS = Path(sys.executable).with_name("aws")


def aws(server: SqsServer, *args: str) -> Any:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": "jobdeck",
        "AWS_SECRET_ACCESS_KEY": "jobdeck-local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    done = subprocess.run(
        [str(AWS), "sqs", *args, "--endpoint-url", server.endpoint, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


@pytest.mark.skipif(not AWS.exists(), reason="the AWS CLI (awscli, in the dev extra) is missing")
def test_aws_cli_creates_sends_receives_and_deletes(sqs_server: SqsServer) -> None:
    url = aws(sqs_server, "create-queue", "--queue-name", "cli-queue")["QueueUrl"]
    assert url.endswith("/000000000000/cli-queue")
    sent = aws(
        sqs_server,
        "send-message",
        "--queue-url",
        url,
        "--message-body",
        "from the CLI",
        "--message-attributes",
        '{"k": {"DataType": "String", "StringValue": "v"}}',
    )
    assert sent["MD5OfMessageBody"]
    attributes = aws(
        sqs_server,
        "get-queue-attributes",
        "--queue-url",
        url,
        "--attribute-names",
        "ApproximateNumberOfMessages",
    )
    assert attributes["Attributes"] == {"ApproximateNumberOfMessages": "1"}
    got = aws(
        sqs_server,
        "receive-message",
        "--queue-url",
        url,
        "--wait-time-seconds",
        "5",
        "--message-attribute-names",
        "All",
        "--attribute-names",
        "All",
    )
    (message,) = got["Messages"]
    assert message["Body"] == "from the CLI"
    assert message["MessageAttributes"]["k"]["StringValue"] == "v"
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    aws(
        sqs_server,
        "delete-message",
        "--queue-url",
        url,
        "--receipt-handle",
        message["ReceiptHandle"],
    )
    assert url in aws(sqs_server, "list-queues")["QueueUrls"]
    aws(sqs_server, "purge-queue", "--queue-url", url)
    aws(sqs_server, "delete-queue", "--queue-url", url)
    assert "QueueUrls" not in (aws(sqs_server, "list-queues", "--queue-name-prefix", "cli-") or {})


@pytest.mark.skipif(not AWS.exists(), reason="the AWS CLI (awscli, in the dev extra) is missing")
def test_aws_cli_tags_permissions_and_move_tasks(sqs_server: SqsServer) -> None:
    dlq = aws(sqs_server, "create-queue", "--queue-name", "cli-dlq")["QueueUrl"]
    dlq_arn = aws(
        sqs_server, "get-queue-attributes", "--queue-url", dlq, "--attribute-names", "QueueArn"
    )["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
    url = aws(
        sqs_server,
        "create-queue",
        "--queue-name",
        "cli-tagged",
        "--tags",
        "team=news",
        "--attributes",
        json.dumps({"RedrivePolicy": redrive}),
    )["QueueUrl"]
    aws(sqs_server, "tag-queue", "--queue-url", url, "--tags", "env=prod")
    assert aws(sqs_server, "list-queue-tags", "--queue-url", url)["Tags"] == {
        "team": "news",
        "env": "prod",
    }
    aws(sqs_server, "untag-queue", "--queue-url", url, "--tag-keys", "team")
    assert aws(sqs_server, "list-queue-tags", "--queue-url", url)["Tags"] == {"env": "prod"}
    aws(
        sqs_server,
        "add-permission",
        "--queue-url",
        url,
        "--label",
        "partner",
        "--aws-account-ids",
        "111122223333",
        "--actions",
        "SendMessage",
    )
    aws(sqs_server, "remove-permission", "--queue-url", url, "--label", "partner")
    assert aws(sqs_server, "list-dead-letter-source-queues", "--queue-url", dlq)["queueUrls"] == [
        url
    ]
    aws(sqs_server, "send-message", "--queue-url", url, "--message-body", "poison")
    for _ in range(2):
        aws(sqs_server, "receive-message", "--queue-url", url, "--visibility-timeout", "0")
    started = aws(sqs_server, "start-message-move-task", "--source-arn", dlq_arn)
    assert started["TaskHandle"]
    (task,) = aws(sqs_server, "list-message-move-tasks", "--source-arn", dlq_arn)["Results"]
    assert (task["Status"], task["ApproximateNumberOfMessagesMoved"]) == ("COMPLETED", 1)
    got = aws(sqs_server, "receive-message", "--queue-url", url)
    assert [m["Body"] for m in got["Messages"]] == ["poison"]
