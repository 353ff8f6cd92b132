"""Every SQS action through real boto3 clients against a running endpoint."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from jobdeck.clock import SystemClock
from jobdeck.queues.catalog import worker_environment
from jobdeck.queues.service import QueueService
from jobdeck.store import open_store
from tests.integration.sqs_harness import SqsServer, error_of, receive_all, unique

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@pytest.fixture
def sqs(sqs_server: SqsServer) -> SQSClient:
    return sqs_server.client()


def test_create_get_list_and_delete_queues(sqs: SQSClient, sqs_server: SqsServer) -> None:
    name = unique("orders")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert url == f"{sqs_server.endpoint}/000000000000/{name}"
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == url  # same attributes: no-op
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    assert url in sqs.list_queues(QueueNamePrefix="orders-")["QueueUrls"]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as raised:
        sqs.get_queue_url(QueueName=name)
    assert error_of(raised) == ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url, MessageBody="x")


def test_create_queue_with_other_attributes_is_refused(sqs: SQSClient) -> None:
    name = unique()
    sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "40"})
    with pytest.raises(sqs.exceptions.QueueNameExists) as raised:
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "41"})
    assert error_of(raised)[0] == "QueueAlreadyExists"


def test_list_queues_pages_with_max_results(sqs: SQSClient) -> None:
    prefix = unique("page")
    urls = [sqs.create_queue(QueueName=f"{prefix}-{i}")["QueueUrl"] for i in range(5)]
    first = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=3)
    assert first["QueueUrls"] == urls[:3]
    second = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=3, NextToken=first["NextToken"])
    assert second["QueueUrls"] == urls[3:]
    assert "NextToken" not in second
    paged = [
        u
        for page in sqs.get_paginator("list_queues").paginate(
            QueueNamePrefix=prefix, PaginationConfig={"PageSize": 2}
        )
        for u in page.get("QueueUrls", [])
    ]
    assert paged == urls


def test_queue_attributes_get_and_set(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique(), Attributes={"DelaySeconds": "0"})["QueueUrl"]
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"VisibilityTimeout": "45", "MessageRetentionPeriod": "3600"}
    )
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "45"
    assert attributes["MessageRetentionPeriod"] == "3600"
    assert attributes["MaximumMessageSize"] == "1048576"
    assert attributes["QueueArn"].endswith(":000000000000:" + url.rsplit("/", 1)[1])
    assert attributes["ApproximateNumberOfMessages"] == "0"
    only = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert only["Attributes"] == {"VisibilityTimeout": "45"}
    unknown: Any = {"Colour": "blue"}
    with pytest.raises(sqs.exceptions.InvalidAttributeName):
        sqs.set_queue_attributes(QueueUrl=url, Attributes=unknown)
    with pytest.raises(ClientError) as raised:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "99999"})
    assert error_of(raised)[0] == "InvalidAttributeValue"


def test_send_receive_delete_with_attributes_and_md5s(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    attributes: Any = {
        "kind": {"DataType": "String", "StringValue": "article"},
        "rank": {"DataType": "Number", "StringValue": "42"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01binary"},
    }
    sent = sqs.send_message(QueueUrl=url, MessageBody="hello ✓", MessageAttributes=attributes)
    got = sqs.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"]
    )["Messages"]
    (message,) = got
    assert message["MessageId"] == sent["MessageId"]
    assert message["Body"] == "hello ✓"
    assert message["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert message["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\x01binary"
    assert message["MessageAttributes"]["rank"] == {"DataType": "Number", "StringValue": "42"}
    system = message["Attributes"]
    assert system["ApproximateReceiveCount"] == "1"
    assert abs(int(system["SentTimestamp"]) - time.time() * 1000) < 60_000
    assert int(system["ApproximateFirstReceiveTimestamp"]) >= int(system["SentTimestamp"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert receive_all(sqs, url) == []
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_receive_selects_message_attributes_by_name_and_prefix(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    sqs.send_message(
        QueueUrl=url,
        MessageBody="x",
        MessageAttributes={
            "trace.id": {"DataType": "String", "StringValue": "t1"},
            "trace.span": {"DataType": "String", "StringValue": "s1"},
            "other": {"DataType": "String", "StringValue": "o"},
        },
    )
    (message,) = receive_all(sqs, url, MessageAttributeNames=["trace.*"], VisibilityTimeout=0)
    assert sorted(message["MessageAttributes"]) == ["trace.id", "trace.span"]
    (bare,) = receive_all(sqs, url)
    assert "MessageAttributes" not in bare
    assert "Attributes" not in bare


def test_batches_send_and_delete_and_report_failures_per_entry(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    answer = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "ok1", "MessageBody": "one"},
            {"Id": "bad", "MessageBody": "nul \x00 char"},
            {"Id": "ok2", "MessageBody": "two", "DelaySeconds": 0},
        ],
    )
    assert [s["Id"] for s in answer["Successful"]] == ["ok1", "ok2"]
    (failure,) = answer["Failed"]
    assert (failure["Id"], failure["Code"], failure["SenderFault"]) == (
        "bad",
        "InvalidMessageContents",
        True,
    )
    got = receive_all(sqs, url)
    assert sorted(m["Body"] for m in got) == ["one", "two"]
    entries: Any = [
        {"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
    ] + [{"Id": "junk", "ReceiptHandle": "not-a-handle"}]
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    assert sorted(s["Id"] for s in deleted["Successful"]) == ["d0", "d1"]
    assert [(f["Id"], f["Code"]) for f in deleted["Failed"]] == [("junk", "ReceiptHandleIsInvalid")]


def test_batch_limits(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    eleven: Any = [{"Id": str(i), "MessageBody": "x"} for i in range(11)]
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest) as raised:
        sqs.send_message_batch(QueueUrl=url, Entries=eleven)
    assert error_of(raised)[0] == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    with pytest.raises(sqs.exceptions.EmptyBatchRequest):
        sqs.send_message_batch(QueueUrl=url, Entries=[])
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct):
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "1"}, {"Id": "a", "MessageBody": "2"}]
        )
    with pytest.raises(sqs.exceptions.InvalidBatchEntryId):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "no spaces", "MessageBody": "1"}])
    big = "x" * 200_000
    with pytest.raises(sqs.exceptions.BatchRequestTooLong):
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": big} for i in range(6)]
        )
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest):
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": "h"} for i in range(11)]
        )
    assert receive_all(sqs, url) == []


def test_message_size_and_content_errors(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique(), Attributes={"MaximumMessageSize": "1024"})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="x" * 1024)
    with pytest.raises(ClientError) as raised:
        sqs.send_message(QueueUrl=url, MessageBody="x" * 1025)
    assert error_of(raised)[0] == "InvalidParameterValue"
    assert "shorter than 1024 bytes" in str(raised.value)
    with pytest.raises(sqs.exceptions.InvalidMessageContents):
        sqs.send_message(QueueUrl=url, MessageBody="bell \x07")
    with pytest.raises(ClientError) as raised:
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
    assert error_of(raised)[0] == "InvalidParameterValue"
    with pytest.raises(ClientError) as raised:
        sqs.receive_message(QueueUrl=url, WaitTimeSeconds=21)
    assert error_of(raised)[0] == "InvalidParameterValue"


def test_receipt_handle_errors(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="garbage")
    sqs.send_message(QueueUrl=url, MessageBody="x")
    (message,) = receive_all(sqs, url, VisibilityTimeout=0)
    (again,) = receive_all(sqs, url, VisibilityTimeout=30)
    # The first handle is stale: changing its visibility is refused as expired...
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=10
        )
    assert error_of(raised)[0] == "InvalidParameterValue"
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    # ...and a delete with the latest handle is idempotent.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])


def test_visibility_timeout_hides_then_expires_and_counts_receives(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique(), Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="work")
    (first,) = receive_all(sqs, url, MessageSystemAttributeNames=["All"], VisibilityTimeout=60)
    assert receive_all(sqs, url) == []  # hidden for 60 s
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=1
    )
    # A worker that dies mid-message loses nothing: it comes back after the timeout.
    (second,) = receive_all(sqs, url, MessageSystemAttributeNames=["All"], WaitTimeSeconds=20)
    assert second["MessageId"] == first["MessageId"]
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    assert (
        second["Attributes"]["ApproximateFirstReceiveTimestamp"]
        == first["Attributes"]["ApproximateFirstReceiveTimestamp"]
    )
    # The queue's own timeout (1 s) applies when the receive gives none.
    (third,) = receive_all(sqs, url, MessageSystemAttributeNames=["All"], WaitTimeSeconds=20)
    assert third["Attributes"]["ApproximateReceiveCount"] == "3"


def test_change_message_visibility_batch(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    got = receive_all(sqs, url, VisibilityTimeout=300)
    assert len(got) == 2
    entries: Any = [
        {"Id": f"m{i}", "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
        for i, m in enumerate(got)
    ] + [{"Id": "bad", "ReceiptHandle": "zzz", "VisibilityTimeout": 0}]
    answer = sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    assert sorted(s["Id"] for s in answer["Successful"]) == ["m0", "m1"]
    assert [f["Code"] for f in answer["Failed"]] == ["ReceiptHandleIsInvalid"]
    assert sorted(m["Body"] for m in receive_all(sqs, url)) == ["a", "b"]


def test_delay_seconds_hide_a_new_message(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    sent = time.monotonic()
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=3)
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessages"],
    )["Attributes"]
    early = receive_all(sqs, url)
    if time.monotonic() - sent < 2.5:  # a stalled machine could have let the delay pass
        assert early == []
        assert attributes == {
            "ApproximateNumberOfMessagesDelayed": "1",
            "ApproximateNumberOfMessages": "0",
        }
        (message,) = receive_all(sqs, url, WaitTimeSeconds=20)
        assert message["Body"] == "later"
        assert time.monotonic() - sent >= 2.9


def test_long_polling_returns_as_soon_as_a_message_arrives(
    sqs: SQSClient, sqs_server: SqsServer
) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    got: list[Any] = []
    took: list[float] = []

    def wait() -> None:
        begun = time.monotonic()
        got.extend(receive_all(sqs_server.client(read_timeout=60), url, WaitTimeSeconds=20))
        took.append(time.monotonic() - begun)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)  # lets the receive start waiting; correctness does not depend on it
    sent_at = time.monotonic()
    sqs.send_message(QueueUrl=url, MessageBody="now")
    waiter.join(timeout=30)
    assert [m["Body"] for m in got] == ["now"]
    assert time.monotonic() - sent_at < 5, "the long poll waited on after the message arrived"
    assert took[0] < 10


def test_long_polling_waits_for_wait_time_seconds_when_empty(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    begun = time.monotonic()
    assert receive_all(sqs, url, WaitTimeSeconds=2) == []
    took = time.monotonic() - begun
    assert 1.9 <= took < 10
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"ReceiveMessageWaitTimeSeconds": "1"})
    begun = time.monotonic()
    assert receive_all(sqs, url) == []
    assert 0.9 <= time.monotonic() - begun < 10


def test_dead_letter_queue_after_max_receive_count(sqs: SQSClient) -> None:
    dlq = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    source = sqs.create_queue(QueueName=unique("src"), Attributes={"RedrivePolicy": policy})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=source, MessageBody="poison")
    for _ in range(2):
        (message,) = receive_all(sqs, source, VisibilityTimeout=0)
    assert receive_all(sqs, source) == []
    (dead,) = receive_all(sqs, dlq, MessageSystemAttributeNames=["All"])
    assert dead["MessageId"] == message["MessageId"]
    assert dead["Attributes"]["DeadLetterQueueSourceArn"].endswith(source.rsplit("/", 1)[1])
    assert dead["Attributes"]["ApproximateReceiveCount"] == "3"
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [source]
    attributes = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["RedrivePolicy"])
    assert json.loads(attributes["Attributes"]["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": 2,
    }
    with pytest.raises(ClientError) as raised:
        sqs.create_queue(
            QueueName=unique(),
            Attributes={
                "RedrivePolicy": json.dumps(
                    {
                        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:missing",
                        "maxReceiveCount": 1,
                    }
                )
            },
        )
    assert error_of(raised)[0] == "InvalidParameterValue"


def test_purge_queue_once_a_minute(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(5)]
    )
    sqs.purge_queue(QueueUrl=url)
    assert receive_all(sqs, url) == []
    with pytest.raises(sqs.exceptions.PurgeQueueInProgress):
        sqs.purge_queue(QueueUrl=url)


def test_unsigned_requests_are_refused_and_unknown_actions_named(sqs_server: SqsServer) -> None:
    headers = {"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"}
    answer = httpx.post(sqs_server.endpoint + "/", content=b"{}", headers=headers)
    assert answer.status_code == 403
    assert answer.json()["__type"].endswith("MissingAuthenticationToken")
    signed = {
        **headers,
        "Authorization": "AWS4-HMAC-SHA256 Credential=a/b, Signature=c",
        "X-Amz-Target": "AmazonSQS.Frobnicate",
    }
    answer = httpx.post(sqs_server.endpoint + "/", content=b"{}", headers=signed)
    assert answer.status_code == 400
    assert answer.json()["__type"].endswith("UnknownOperationException")


def test_binary_attribute_values_round_trip_as_base64_on_the_wire(sqs_server: SqsServer) -> None:
    sqs = sqs_server.client()
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    raw = bytes(range(256))
    sqs.send_message(
        QueueUrl=url,
        MessageBody="b",
        MessageAttributes={"raw": {"DataType": "Binary.gz", "BinaryValue": raw}},
    )
    headers = {
        "X-Amz-Target": "AmazonSQS.ReceiveMessage",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=a/b, Signature=c",
    }
    body = json.dumps({"QueueUrl": url, "MessageAttributeNames": ["All"]})
    answer = httpx.post(sqs_server.endpoint + "/", content=body, headers=headers).json()
    value = answer["Messages"][0]["MessageAttributes"]["raw"]
    assert value["DataType"] == "Binary.gz"
    assert base64.b64decode(value["BinaryValue"]) == raw


def test_long_polling_sees_a_message_sent_by_another_process(
    sqs: SQSClient, sqs_server: SqsServer
) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    got: list[Any] = []

    def wait() -> None:
        got.extend(receive_all(sqs_server.client(read_timeout=60), url, WaitTimeSeconds=20))

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)  # lets the receive start waiting; correctness does not depend on it
    # Another process writes to the same store (here: this test, as `jobdeck` would).
    store = open_store(sqs_server.store_url)
    try:
        QueueService(store, SystemClock(), sqs_server.endpoint).send_message(
            {"QueueUrl": url, "MessageBody": "from elsewhere"}
        )
    finally:
        store.close()
    sent_at = time.monotonic()
    waiter.join(timeout=30)
    assert [m["Body"] for m in got] == ["from elsewhere"]
    assert time.monotonic() - sent_at < 5


def test_worker_environment_alone_reaches_the_endpoint(
    sqs_server: SqsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique("worker")
    sqs_server.client().create_queue(QueueName=name)
    for key, value in worker_environment(sqs_server.endpoint, name).items():
        monkeypatch.setenv(key, value)
    worker = boto3.client("sqs")  # as unchanged worker code creates it
    url = os.environ["JOBDECK_QUEUE_URL"]
    worker.send_message(QueueUrl=url, MessageBody="hello worker")
    (message,) = receive_all(worker, url)
    assert message["Body"] == "hello worker"
