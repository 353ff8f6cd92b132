"""Tags, permissions, dead-letter sources and message-move tasks, through boto3 (JSON)
and the query protocol, and NonExistentQueue for unknown queues in each."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.sqs_harness import SqsServer, error_of, receive_all, unique
from tests.integration.test_sqs_compat import NS, query, query_error

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@pytest.fixture
def sqs(sqs_server: SqsServer) -> SQSClient:
    return sqs_server.client()


def arn_of(sqs: SQSClient, url: str) -> str:
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return got["Attributes"]["QueueArn"]


def missing_url(server: SqsServer) -> str:
    return f"{server.endpoint}/000000000000/{unique('gone')}"


def test_tags_on_create_tag_untag_and_list(sqs: SQSClient, sqs_server: SqsServer) -> None:
    url = sqs.create_queue(QueueName=unique(), tags={"team": "news", "cost": "feeds"})["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "news", "cost": "feeds"}
    sqs.tag_queue(QueueUrl=url, Tags={"team": "sport", "env": "prod"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["cost", "not-there"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "sport", "env": "prod"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["team", "env"])
    assert "Tags" not in sqs.list_queue_tags(QueueUrl=url)
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.tag_queue(QueueUrl=url, Tags={f"k{i}": "v" for i in range(51)})
    assert error_of(raised)[0] == "InvalidParameterValue"

    status, _ = query(
        sqs_server,
        Action="TagQueue",
        QueueUrl=url,
        **{"Tag.1.Key": "team", "Tag.1.Value": "data", "Tag.2.Key": "tier", "Tag.2.Value": ""},
    )
    assert status == 200
    status, root = query(sqs_server, Action="ListQueueTags", QueueUrl=url)
    assert status == 200
    tags = {
        t.findtext("sqs:Key", None, NS): t.findtext("sqs:Value", "", NS)
        for t in root.findall(".//sqs:Tag", NS)
    }
    assert tags == {"team": "data", "tier": ""}
    status, _ = query(sqs_server, Action="UntagQueue", QueueUrl=url, **{"TagKey.1": "tier"})
    assert status == 200
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "data"}
    name = unique()
    status, _ = query(
        sqs_server,
        Action="CreateQueue",
        QueueName=name,
        **{"Tag.1.Key": "from", "Tag.1.Value": "query"},
    )
    assert status == 200
    created = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=created)["Tags"] == {"from": "query"}


def test_permissions_are_statements_of_the_policy(sqs: SQSClient, sqs_server: SqsServer) -> None:
    url = sqs.create_queue(QueueName=unique())["QueueUrl"]
    sqs.add_permission(
        QueueUrl=url,
        Label="partner-send",
        AWSAccountIds=["111122223333"],
        Actions=["SendMessage", "GetQueueUrl"],
    )
    status, _ = query(
        sqs_server,
        Action="AddPermission",
        QueueUrl=url,
        Label="auditor",
        **{"AWSAccountId.1": "444455556666", "ActionName.1": "GetQueueAttributes"},
    )
    assert status == 200
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]
    policy = json.loads(got["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["partner-send", "auditor"]
    (send,) = [s for s in policy["Statement"] if s["Sid"] == "partner-send"]
    assert send["Principal"] == {"AWS": ["arn:aws:iam::111122223333:root"]}
    assert send["Action"] == ["SQS:SendMessage", "SQS:GetQueueUrl"]
    assert send["Resource"] == arn_of(sqs, url)
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.add_permission(
            QueueUrl=url, Label="auditor", AWSAccountIds=["111122223333"], Actions=["*"]
        )
    assert error_of(raised)[0] == "InvalidParameterValue"

    sqs.remove_permission(QueueUrl=url, Label="partner-send")
    status, _ = query(sqs_server, Action="RemovePermission", QueueUrl=url, Label="auditor")
    assert status == 200
    assert "Policy" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get(
        "Attributes", {}
    )
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.remove_permission(QueueUrl=url, Label="auditor")
    assert error_of(raised)[0] == "InvalidParameterValue"


def test_unknown_queues_are_non_existent_in_every_queue_action(
    sqs: SQSClient, sqs_server: SqsServer
) -> None:
    url = missing_url(sqs_server)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("tag_queue", {"Tags": {"a": "b"}}),
        ("untag_queue", {"TagKeys": ["a"]}),
        ("list_queue_tags", {}),
        ("add_permission", {"Label": "l", "AWSAccountIds": ["111122223333"], "Actions": ["*"]}),
        ("remove_permission", {"Label": "l"}),
        ("list_dead_letter_source_queues", {}),
    ]
    for method, extra in calls:
        with pytest.raises(sqs.exceptions.QueueDoesNotExist) as raised:
            getattr(sqs, method)(QueueUrl=url, **extra)
        assert error_of(raised)[0] == "AWS.SimpleQueueService.NonExistentQueue", method
    for action in ("ListQueueTags", "RemovePermission", "ListDeadLetterSourceQueues"):
        status, root = query(sqs_server, Action=action, QueueUrl=url, Label="l")
        assert (status, query_error(root)[0]) == (
            400,
            "AWS.SimpleQueueService.NonExistentQueue",
        ), action


def dead_lettered(sqs: SQSClient, count: int) -> tuple[str, str]:
    """A source queue and its dead-letter queue holding ``count`` of its messages."""
    dlq = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": arn_of(sqs, dlq), "maxReceiveCount": 1})
    source = sqs.create_queue(QueueName=unique("src"), Attributes={"RedrivePolicy": policy})[
        "QueueUrl"
    ]
    for i in range(count):
        sqs.send_message(QueueUrl=source, MessageBody=f"m{i}")
    assert len(receive_all(sqs, source, VisibilityTimeout=0)) == count
    assert receive_all(sqs, source) == []  # past maxReceiveCount: all dead-lettered
    return source, dlq


def test_message_move_task_sends_dead_letters_back(sqs: SQSClient, sqs_server: SqsServer) -> None:
    source, dlq = dead_lettered(sqs, 3)
    dlq_arn = arn_of(sqs, dlq)
    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert handle
    assert sorted(m["Body"] for m in receive_all(sqs, source)) == ["m0", "m1", "m2"]
    assert receive_all(sqs, dlq) == []
    (task,) = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
    assert task["Status"] == "COMPLETED"
    assert task["SourceArn"] == dlq_arn
    assert (
        task["ApproximateNumberOfMessagesMoved"],
        task["ApproximateNumberOfMessagesToMove"],
    ) == (
        3,
        3,
    )
    with pytest.raises(sqs.exceptions.ResourceNotFoundException):
        sqs.cancel_message_move_task(TaskHandle=handle)
    with pytest.raises(sqs.exceptions.ResourceNotFoundException):
        sqs.cancel_message_move_task(TaskHandle="no-such-task")

    # To a destination of its own, over the query protocol.
    other = sqs.create_queue(QueueName=unique("elsewhere"))["QueueUrl"]
    _, dlq2 = dead_lettered(sqs, 2)
    status, root = query(
        sqs_server,
        Action="StartMessageMoveTask",
        SourceArn=arn_of(sqs, dlq2),
        DestinationArn=arn_of(sqs, other),
        MaxNumberOfMessagesPerSecond=10,
    )
    assert status == 200
    assert root.findtext(".//sqs:TaskHandle", None, NS)
    assert sorted(m["Body"] for m in receive_all(sqs, other)) == ["m0", "m1"]
    status, root = query(
        sqs_server, Action="ListMessageMoveTasks", SourceArn=arn_of(sqs, dlq2), MaxResults=10
    )
    assert status == 200
    (entry,) = root.findall(".//sqs:ListMessageMoveTasksResultEntry", NS)
    assert entry.findtext("sqs:Status", None, NS) == "COMPLETED"
    assert entry.findtext("sqs:DestinationArn", None, NS) == arn_of(sqs, other)
    assert entry.findtext("sqs:MaxNumberOfMessagesPerSecond", None, NS) == "10"


def test_message_move_task_refusals(sqs: SQSClient, sqs_server: SqsServer) -> None:
    plain = sqs.create_queue(QueueName=unique())["QueueUrl"]
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.start_message_move_task(SourceArn=arn_of(sqs, plain))
    assert error_of(raised)[0] == "InvalidParameterValue"  # not a dead-letter queue
    gone = "arn:aws:sqs:us-east-1:000000000000:" + unique("gone")
    for call in (
        lambda: sqs.start_message_move_task(SourceArn=gone),
        lambda: sqs.list_message_move_tasks(SourceArn=gone),
    ):
        with pytest.raises(sqs.exceptions.ResourceNotFoundException):
            call()
    status, root = query(sqs_server, Action="ListMessageMoveTasks", SourceArn=gone)
    assert (status, query_error(root)[0]) == (404, "ResourceNotFoundException")
    _, dlq = dead_lettered(sqs, 1)
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.start_message_move_task(SourceArn=arn_of(sqs, dlq), MaxNumberOfMessagesPerSecond=501)
    assert error_of(raised)[0] == "InvalidParameterValue"
