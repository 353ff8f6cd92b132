"""SQS as AWS really answers it: the edge cases an AWS-verified suite checks, in the JSON
protocol (boto3) and the query protocol (form-encoded, XML), each as its own client sends it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

import httpx
import pytest

from tests.integration.sqs_harness import SqsServer, error_of, receive_all, unique

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

NS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/"}
SIGNED = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=jobdeck/x/us-east-1/sqs/aws4_request, "
    "SignedHeaders=host, Signature=0"
}


@pytest.fixture
def sqs(sqs_server: SqsServer) -> SQSClient:
    return sqs_server.client()


def query(server: SqsServer, **form: Any) -> tuple[int, ElementTree.Element]:
    answer = httpx.post(
        server.endpoint + "/", data={k: str(v) for k, v in form.items()}, headers=SIGNED
    )
    return answer.status_code, ElementTree.fromstring(answer.content)


def query_error(root: ElementTree.Element) -> tuple[str | None, str | None]:
    return root.findtext("sqs:Error/sqs:Code", None, NS), root.findtext(
        "sqs:Error/sqs:Message", None, NS
    )


def fifo_queue(sqs: SQSClient, **attributes: str) -> str:
    every: Any = {"FifoQueue": "true", **attributes}
    return sqs.create_queue(QueueName=unique("f") + ".fifo", Attributes=every)["QueueUrl"]


# -- 1. FIFO and DelaySeconds=0 ----------------------------------------------------------


def test_fifo_accepts_a_zero_delay_and_refuses_any_other(sqs: SQSClient) -> None:
    url = fifo_queue(sqs, ContentBasedDeduplication="true")
    sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g", DelaySeconds=0)
    batch = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": "b", "MessageBody": "b", "MessageGroupId": "g", "DelaySeconds": 0}],
    )
    assert [e["Id"] for e in batch["Successful"]] == ["b"]
    assert not batch.get("Failed")
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.send_message(QueueUrl=url, MessageBody="c", MessageGroupId="g", DelaySeconds=5)
    assert error_of(raised)[0] == "InvalidParameterValue"
    assert [m["Body"] for m in receive_all(sqs, url)] == ["a", "b"]


def test_fifo_zero_delay_over_the_query_protocol(sqs: SQSClient, sqs_server: SqsServer) -> None:
    url = fifo_queue(sqs, ContentBasedDeduplication="true")
    status, root = query(
        sqs_server,
        Action="SendMessage",
        QueueUrl=url,
        MessageBody="a",
        MessageGroupId="g",
        DelaySeconds=0,
    )
    assert status == 200, ElementTree.tostring(root)
    status, root = query(
        sqs_server,
        Action="SendMessageBatch",
        QueueUrl=url,
        **{
            "SendMessageBatchRequestEntry.1.Id": "b",
            "SendMessageBatchRequestEntry.1.MessageBody": "b",
            "SendMessageBatchRequestEntry.1.MessageGroupId": "g",
            "SendMessageBatchRequestEntry.1.DelaySeconds": 0,
        },
    )
    assert status == 200
    assert root.find(".//sqs:BatchResultErrorEntry", NS) is None
    assert root.findtext(".//sqs:SendMessageBatchResultEntry/sqs:Id", None, NS) == "b"


# -- 2. unknown queues -------------------------------------------------------------------


def test_an_address_that_names_no_queue_is_a_queue_that_does_not_exist(
    sqs: SQSClient, sqs_server: SqsServer
) -> None:
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as raised:
        sqs.get_queue_attributes(QueueUrl="http://whatever-incorrect-queue-address")
    assert error_of(raised) == ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    status, root = query(
        sqs_server, Action="GetQueueAttributes", QueueUrl="http://whatever-incorrect-queue-address"
    )
    assert (status, query_error(root)[0]) == (400, "AWS.SimpleQueueService.NonExistentQueue")


def test_delete_message_on_an_unknown_queue_is_non_existent_queue(
    sqs: SQSClient, sqs_server: SqsServer
) -> None:
    missing = f"{sqs_server.endpoint}/000000000000/{unique('gone')}"
    for handle in ("not-a-handle", "x"):
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            sqs.delete_message(QueueUrl=missing, ReceiptHandle=handle)
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            sqs.change_message_visibility(
                QueueUrl=missing, ReceiptHandle=handle, VisibilityTimeout=1
            )
    status, root = query(
        sqs_server, Action="DeleteMessage", QueueUrl=missing, ReceiptHandle="not-a-handle"
    )
    assert (status, query_error(root)[0]) == (400, "AWS.SimpleQueueService.NonExistentQueue")


# -- 3. batch errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "entry_name"),
    [
        ("delete_message_batch", "DeleteMessageBatch"),
        ("change_message_visibility_batch", "ChangeMessageVisibilityBatch"),
        ("send_message_batch", "SendMessageBatch"),
    ],
)
def test_an_empty_batch_names_its_own_action(
    sqs: SQSClient, sqs_server: SqsServer, action: str, entry_name: str
) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    with pytest.raises(sqs.exceptions.EmptyBatchRequest) as raised:
        getattr(sqs, action)(QueueUrl=url, Entries=[])
    message = raised.value.response["Error"]["Message"]
    assert message == f"There should be at least one {entry_name}RequestEntry in the request."
    status, root = query(sqs_server, Action=entry_name, QueueUrl=url)
    assert status == 400
    assert query_error(root) == ("AWS.SimpleQueueService.EmptyBatchRequest", message)


def test_a_repeated_batch_id_is_named(sqs: SQSClient, sqs_server: SqsServer) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    entry: Any = {"Id": "same", "MessageBody": "x"}
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct) as raised:
        sqs.send_message_batch(QueueUrl=url, Entries=[entry, entry])
    assert raised.value.response["Error"]["Message"] == "Id same repeated."
    status, root = query(
        sqs_server,
        Action="DeleteMessageBatch",
        QueueUrl=url,
        **{
            "DeleteMessageBatchRequestEntry.1.Id": "dup",
            "DeleteMessageBatchRequestEntry.1.ReceiptHandle": "a",
            "DeleteMessageBatchRequestEntry.2.Id": "dup",
            "DeleteMessageBatchRequestEntry.2.ReceiptHandle": "b",
        },
    )
    assert (status, query_error(root)[1]) == (400, "Id dup repeated.")


def test_a_fifo_batch_entry_without_group_or_dedup_id_fails_the_whole_call(
    sqs: SQSClient, sqs_server: SqsServer
) -> None:
    url = fifo_queue(sqs)
    good: Any = {
        "Id": "good",
        "MessageBody": "x",
        "MessageGroupId": "g",
        "MessageDeduplicationId": "1",
    }
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[good, {"Id": "nogroup", "MessageBody": "y", "MessageDeduplicationId": "2"}],
        )
    assert error_of(raised)[0] == "MissingParameter"
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[good, {"Id": "nodedup", "MessageBody": "y", "MessageGroupId": "g"}],
        )
    assert error_of(raised)[0] == "InvalidParameterValue"
    status, root = query(
        sqs_server,
        Action="SendMessageBatch",
        QueueUrl=url,
        **{
            "SendMessageBatchRequestEntry.1.Id": "nogroup",
            "SendMessageBatchRequestEntry.1.MessageBody": "y",
            "SendMessageBatchRequestEntry.1.MessageDeduplicationId": "3",
        },
    )
    assert (status, query_error(root)[0]) == (400, "MissingParameter")
    assert receive_all(sqs, url) == []  # nothing of the refused calls was sent


# -- 4. attributes -----------------------------------------------------------------------


def test_an_empty_policy_removes_it(sqs: SQSClient, sqs_server: SqsServer) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    policy = json.dumps({"Version": "2012-10-17", "Statement": []})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
    assert got["Attributes"]["Policy"] == policy
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
    assert "Policy" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get(
        "Attributes", {}
    )
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    status, _ = query(
        sqs_server,
        Action="SetQueueAttributes",
        QueueUrl=url,
        **{"Attribute.1.Name": "Policy", "Attribute.1.Value": ""},
    )
    assert status == 200
    assert "Policy" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get(
        "Attributes", {}
    )


def test_message_attribute_names_take_a_prefix(sqs: SQSClient, sqs_server: SqsServer) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    attributes: Any = {
        name: {"DataType": "String", "StringValue": name}
        for name in ("Custom.One", "Custom.Two", "CustomThree", "Other")
    }
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attributes)
    (got,) = receive_all(sqs, url, MessageAttributeNames=["Custom.*"], VisibilityTimeout=0)
    assert sorted(got["MessageAttributes"]) == ["Custom.One", "Custom.Two"]
    status, root = query(
        sqs_server,
        Action="ReceiveMessage",
        QueueUrl=url,
        VisibilityTimeout=0,
        **{"MessageAttributeName.1": "Custom.*"},
    )
    assert status == 200
    names = [e.text for e in root.findall(".//sqs:MessageAttribute/sqs:Name", NS)]
    assert sorted(n or "" for n in names) == ["Custom.One", "Custom.Two"]
    spaced: Any = ["VisibilityTimeout "]  # matched exactly: a trailing space is an error
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=spaced)
    assert error_of(raised)[0] == "InvalidAttributeName"


# -- 5. receipt handles of a message delivered again -------------------------------------


def test_an_older_handle_deletes_a_redelivered_standard_message(
    sqs: SQSClient, sqs_server: SqsServer
) -> None:
    """The slow worker: its message was delivered again meanwhile; its delete still
    removes the message, so the message is not waiting to be processed a second time."""
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    for protocol in ("json", "query"):
        sqs.send_message(QueueUrl=url, MessageBody=protocol)
        (first,) = receive_all(sqs, url, VisibilityTimeout=0)
        (again,) = receive_all(sqs, url, VisibilityTimeout=0)
        assert first["ReceiptHandle"] != again["ReceiptHandle"]
        if protocol == "json":
            sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
        else:
            status, _ = query(
                sqs_server,
                Action="DeleteMessage",
                QueueUrl=url,
                ReceiptHandle=first["ReceiptHandle"],
            )
            assert status == 200
        assert receive_all(sqs, url) == []
        # Whoever holds the newer handle finds it gone: deleting again succeeds, and
        # its visibility cannot be extended.
        sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
        with pytest.raises(sqs.exceptions.ClientError):
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=30
            )


def test_an_older_handle_cannot_move_the_visibility_of_a_newer_receive(sqs: SQSClient) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    (first,) = receive_all(sqs, url, VisibilityTimeout=0)
    (again,) = receive_all(sqs, url, VisibilityTimeout=30)
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
        )
    assert error_of(raised)[0] == "InvalidParameterValue"
    assert "expired" in raised.value.response["Error"]["Message"]
    assert receive_all(sqs, url) == []  # still held by the newer receive
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=0
    )
    assert len(receive_all(sqs, url, VisibilityTimeout=0)) == 1


def test_a_fifo_queue_refuses_an_expired_handle(sqs: SQSClient, sqs_server: SqsServer) -> None:
    url = fifo_queue(sqs, ContentBasedDeduplication="true")
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
    (first,) = receive_all(sqs, url, VisibilityTimeout=0)
    (again,) = receive_all(sqs, url, VisibilityTimeout=30)
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    assert error_of(raised)[0] == "InvalidParameterValue"
    assert "expired" in raised.value.response["Error"]["Message"]
    status, root = query(
        sqs_server, Action="DeleteMessage", QueueUrl=url, ReceiptHandle=first["ReceiptHandle"]
    )
    assert (status, query_error(root)[0]) == (400, "InvalidParameterValue")
    batch = sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": "old", "ReceiptHandle": first["ReceiptHandle"]}]
    )
    assert [f["Id"] for f in batch["Failed"]] == ["old"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])  # gone: no error
    assert receive_all(sqs, url, VisibilityTimeout=0) == []
