"""FIFO queues through real boto3 clients: group order, one in flight per group,
deduplication, their rules, and dead letters that keep a group in order."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from tests.integration.sqs_harness import SqsServer, error_of, receive_all, unique

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@pytest.fixture
def sqs(sqs_server: SqsServer) -> SQSClient:
    return sqs_server.client()


def test_fifo_groups_in_order_one_in_flight_per_group(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique("orders") + ".fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    for i in range(3):
        for group in ("a", "b"):
            sent = sqs.send_message(
                QueueUrl=url,
                MessageBody=f"{group}{i}",
                MessageGroupId=group,
                MessageDeduplicationId=f"{group}{i}",
            )
            assert len(sent["SequenceNumber"]) == 20
    (first,) = receive_all(sqs, url, MaxNumberOfMessages=1, MessageSystemAttributeNames=["All"])
    assert (first["Body"], first["Attributes"]["MessageGroupId"]) == ("a0", "a")
    # Group a is busy until a0 is deleted: only group b is served meanwhile.
    (second,) = receive_all(sqs, url, MaxNumberOfMessages=1)
    assert second["Body"] == "b0"
    assert receive_all(sqs, url) == []
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    assert [m["Body"] for m in receive_all(sqs, url)] == ["a1", "a2"]
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=second["ReceiptHandle"], VisibilityTimeout=0
    )
    assert [m["Body"] for m in receive_all(sqs, url)] == ["b0", "b1", "b2"]


def test_fifo_deduplication_by_id_and_by_content(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique() + ".fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    one = sqs.send_message(
        QueueUrl=url, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="d1"
    )
    two = sqs.send_message(
        QueueUrl=url, MessageBody="y", MessageGroupId="g", MessageDeduplicationId="d1"
    )
    assert two["MessageId"] == one["MessageId"]
    with pytest.raises(ClientError) as raised:
        sqs.send_message(QueueUrl=url, MessageBody="z", MessageGroupId="g")
    assert error_of(raised)[0] == "InvalidParameterValue"
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"ContentBasedDeduplication": "true"})
    three = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    four = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="h")
    assert four["MessageId"] == three["MessageId"]
    batch = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "a", "MessageBody": "batch", "MessageGroupId": "g"},
            {"Id": "b", "MessageBody": "batch", "MessageGroupId": "g"},
        ],
    )
    ids = {s["Id"]: s["MessageId"] for s in batch["Successful"]}
    assert ids["a"] == ids["b"]
    assert [m["Body"] for m in receive_all(sqs, url)] == ["x", "same", "batch"]


def test_fifo_rules(sqs: SQSClient) -> None:
    with pytest.raises(ClientError) as raised:
        sqs.create_queue(QueueName=unique() + ".fifo")
    assert error_of(raised)[0] == "InvalidParameterValue"
    url = sqs.create_queue(
        QueueName=unique() + ".fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    with pytest.raises(ClientError) as raised:
        sqs.send_message(QueueUrl=url, MessageBody="x")
    assert error_of(raised)[0] == "MissingParameter"
    with pytest.raises(ClientError) as raised:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g", DelaySeconds=5)
    assert error_of(raised)[0] == "InvalidParameterValue"
    standard = sqs.create_queue(QueueName=unique())["QueueUrl"]
    with pytest.raises(ClientError):
        sqs.send_message(QueueUrl=standard, MessageBody="x", MessageDeduplicationId="d")


def test_fifo_dead_letters_keep_the_group_in_order(sqs: SQSClient) -> None:
    dlq = sqs.create_queue(QueueName=unique("dlq") + ".fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=unique() + ".fifo",
        Attributes={
            "FifoQueue": "true",
            "ContentBasedDeduplication": "true",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 1}),
        },
    )["QueueUrl"]
    for body in ("m1", "m2"):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g")
    (first,) = receive_all(sqs, url, MaxNumberOfMessages=1, VisibilityTimeout=0)
    assert first["Body"] == "m1"
    (after,) = receive_all(sqs, url, MaxNumberOfMessages=1)
    assert after["Body"] == "m2"
    assert [m["Body"] for m in receive_all(sqs, dlq)] == ["m1"]
