"""The older query protocol: form-encoded requests, XML answers, as older SDKs send them."""

from __future__ import annotations

import base64
from xml.etree import ElementTree

import httpx

from jobdeck.queues.messages import md5_hex
from tests.integration.sqs_harness import SqsServer

NS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/"}
SIGNED = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=jobdeck/x/us-east-1/sqs/aws4_request, "
    "SignedHeaders=host, Signature=0"
}


def call(server: SqsServer, path: str = "/", **form: str) -> tuple[int, ElementTree.Element]:
    answer = httpx.post(server.endpoint + path, data=form, headers=SIGNED, timeout=60)
    return answer.status_code, ElementTree.fromstring(answer.content)


def text(root: ElementTree.Element, path: str) -> str | None:
    found = root.find(path, NS)
    return None if found is None else found.text


def test_query_protocol_round_trip(sqs_server: SqsServer) -> None:
    status, created = call(
        sqs_server,
        Action="CreateQueue",
        QueueName="query-queue",
        **{"Attribute.1.Name": "VisibilityTimeout", "Attribute.1.Value": "45"},
    )
    assert status == 200
    url = text(created, "sqs:CreateQueueResult/sqs:QueueUrl")
    assert url is not None
    assert url.endswith("/000000000000/query-queue")
    assert text(created, "sqs:ResponseMetadata/sqs:RequestId")

    status, sent = call(
        sqs_server,
        Action="SendMessage",
        QueueUrl=url,
        MessageBody="über",
        **{
            "MessageAttribute.1.Name": "kind",
            "MessageAttribute.1.Value.DataType": "String",
            "MessageAttribute.1.Value.StringValue": "news",
            "MessageAttribute.2.Name": "raw",
            "MessageAttribute.2.Value.DataType": "Binary",
            "MessageAttribute.2.Value.BinaryValue": base64.b64encode(b"\x01\x02").decode(),
        },
    )
    assert status == 200
    assert text(sent, "sqs:SendMessageResult/sqs:MD5OfMessageBody") == md5_hex("über".encode())

    # The queue URL may also be the request's path.
    path = "/000000000000/query-queue"
    _, got = call(
        sqs_server,
        path,
        Action="ReceiveMessage",
        **{"AttributeName.1": "All", "MessageAttributeName.1": "All", "MaxNumberOfMessages": "5"},
    )
    message = got.find("sqs:ReceiveMessageResult/sqs:Message", NS)
    assert message is not None
    assert text(message, "sqs:Body") == "über"
    pairs = {
        text(a, "sqs:Name"): text(a, "sqs:Value") for a in message.findall("sqs:Attribute", NS)
    }
    assert pairs["ApproximateReceiveCount"] == "1"
    attributes = {
        text(a, "sqs:Name"): text(a, "sqs:Value/sqs:StringValue")
        or text(a, "sqs:Value/sqs:BinaryValue")
        for a in message.findall("sqs:MessageAttribute", NS)
    }
    assert attributes == {"kind": "news", "raw": base64.b64encode(b"\x01\x02").decode()}
    assert text(message, "sqs:MD5OfMessageAttributes") == text(
        sent, "sqs:SendMessageResult/sqs:MD5OfMessageAttributes"
    )
    handle = text(message, "sqs:ReceiptHandle")
    assert handle is not None

    _, deleted = call(
        sqs_server,
        Action="DeleteMessageBatch",
        QueueUrl=url,
        **{
            "DeleteMessageBatchRequestEntry.1.Id": "a",
            "DeleteMessageBatchRequestEntry.1.ReceiptHandle": handle,
            "DeleteMessageBatchRequestEntry.2.Id": "b",
            "DeleteMessageBatchRequestEntry.2.ReceiptHandle": "junk",
        },
    )
    assert (
        text(deleted, "sqs:DeleteMessageBatchResult/sqs:DeleteMessageBatchResultEntry/sqs:Id")
        == "a"
    )
    failed = deleted.find("sqs:DeleteMessageBatchResult/sqs:BatchResultErrorEntry", NS)
    assert failed is not None
    assert text(failed, "sqs:Code") == "ReceiptHandleIsInvalid"
    assert text(failed, "sqs:SenderFault") == "true"

    _, attrs = call(
        sqs_server,
        Action="GetQueueAttributes",
        QueueUrl=url,
        **{
            "AttributeName.1": "VisibilityTimeout",
            "AttributeName.2": "ApproximateNumberOfMessages",
        },
    )
    values = {
        text(a, "sqs:Name"): text(a, "sqs:Value")
        for a in attrs.findall("sqs:GetQueueAttributesResult/sqs:Attribute", NS)
    }
    assert values == {"VisibilityTimeout": "45", "ApproximateNumberOfMessages": "0"}

    _, listed = call(sqs_server, Action="ListQueues", QueueNamePrefix="query-")
    assert [q.text for q in listed.findall("sqs:ListQueuesResult/sqs:QueueUrl", NS)] == [url]


def test_query_protocol_errors(sqs_server: SqsServer) -> None:
    status, error = call(sqs_server, Action="GetQueueUrl", QueueName="missing-queue")
    assert status == 400
    assert text(error, "sqs:Error/sqs:Code") == "AWS.SimpleQueueService.NonExistentQueue"
    assert text(error, "sqs:Error/sqs:Type") == "Sender"
    status, error = call(sqs_server, Action="Frobnicate")
    assert text(error, "sqs:Error/sqs:Code") == "InvalidAction"
    unsigned = httpx.post(sqs_server.endpoint + "/", data={"Action": "ListQueues"})
    assert unsigned.status_code == 403


def test_query_protocol_batches(sqs_server: SqsServer) -> None:
    _, created = call(sqs_server, Action="CreateQueue", QueueName="query-batches")
    url = text(created, "sqs:CreateQueueResult/sqs:QueueUrl")
    assert url is not None
    _, sent = call(
        sqs_server,
        Action="SendMessageBatch",
        QueueUrl=url,
        **{
            "SendMessageBatchRequestEntry.1.Id": "one",
            "SendMessageBatchRequestEntry.1.MessageBody": "first",
            "SendMessageBatchRequestEntry.1.MessageAttribute.1.Name": "n",
            "SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType": "Number",
            "SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue": "7",
            "SendMessageBatchRequestEntry.2.Id": "two",
            "SendMessageBatchRequestEntry.2.MessageBody": "second",
            "SendMessageBatchRequestEntry.2.DelaySeconds": "0",
        },
    )
    entries = sent.findall("sqs:SendMessageBatchResult/sqs:SendMessageBatchResultEntry", NS)
    assert [text(e, "sqs:Id") for e in entries] == ["one", "two"]
    assert text(entries[0], "sqs:MD5OfMessageAttributes")
    _, got = call(
        sqs_server,
        Action="ReceiveMessage",
        QueueUrl=url,
        MaxNumberOfMessages="10",
        **{"MessageAttributeName.1": "n"},
    )
    messages = got.findall("sqs:ReceiveMessageResult/sqs:Message", NS)
    assert sorted(text(m, "sqs:Body") or "" for m in messages) == ["first", "second"]
    form = {"Action": "ChangeMessageVisibilityBatch", "QueueUrl": url}
    for i, message in enumerate(messages, start=1):
        form[f"ChangeMessageVisibilityBatchRequestEntry.{i}.Id"] = f"m{i}"
        form[f"ChangeMessageVisibilityBatchRequestEntry.{i}.ReceiptHandle"] = (
            text(message, "sqs:ReceiptHandle") or ""
        )
        form[f"ChangeMessageVisibilityBatchRequestEntry.{i}.VisibilityTimeout"] = "0"
    _, changed = call(sqs_server, **form)
    ids = changed.findall(
        "sqs:ChangeMessageVisibilityBatchResult/sqs:ChangeMessageVisibilityBatchResultEntry/sqs:Id",
        NS,
    )
    assert sorted(i.text or "" for i in ids) == ["m1", "m2"]
    _, again = call(sqs_server, Action="ReceiveMessage", QueueUrl=url, MaxNumberOfMessages="10")
    assert len(again.findall("sqs:ReceiveMessageResult/sqs:Message", NS)) == 2
    status, _ = call(sqs_server, Action="DeleteQueue", QueueUrl=url)
    assert status == 200
