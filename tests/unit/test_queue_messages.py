"""The pure message semantics: MD5s as SQS computes them, receipt handles, receive plans."""

from __future__ import annotations

import base64
from typing import Any

import boto3
import pytest
from moto import mock_aws

from jobdeck.queues.errors import SqsError
from jobdeck.queues.messages import (
    check_attributes,
    md5_hex,
    md5_of_attributes,
    message_size,
    parse_receipt_handle,
    plan_receive,
    receipt_handle,
    select_attributes,
)
from jobdeck.store.queue_records import QueueRecord, QueueSettings, StoredMessage

ATTRIBUTES: dict[str, Any] = {
    "zeta": {"DataType": "String", "StringValue": "last ✓"},
    "alpha": {"DataType": "Number", "StringValue": "3.14"},
    "blob": {"DataType": "Binary.gzip", "BinaryValue": b"\x00\xffbytes"},
    "custom": {"DataType": "String.json", "StringValue": '{"a": 1}'},
}


def _wire(attributes: dict[str, Any]) -> dict[str, Any]:
    """The attributes as they arrive in JSON: binary values in base64."""
    return {
        name: {**value, "BinaryValue": base64.b64encode(value["BinaryValue"]).decode()}
        if "BinaryValue" in value
        else value
        for name, value in attributes.items()
    }


def test_md5_of_message_attributes_matches_a_reference_implementation() -> None:
    # moto's in-process SQS is an independent implementation of the same algorithm.
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="reference")["QueueUrl"]
        sent = sqs.send_message(QueueUrl=url, MessageBody="body ✓", MessageAttributes=ATTRIBUTES)
    assert md5_of_attributes(check_attributes(_wire(ATTRIBUTES))) == sent["MD5OfMessageAttributes"]
    assert md5_hex("body ✓".encode()) == sent["MD5OfMessageBody"]


def test_md5_of_no_attributes_is_absent() -> None:
    assert md5_of_attributes({}) is None


def test_message_size_counts_body_names_types_and_values() -> None:
    wire = check_attributes({"k": {"DataType": "String", "StringValue": "vv"}})
    assert message_size("héllo", wire) == len("héllo".encode()) + 1 + 6 + 2


@pytest.mark.parametrize(
    ("attributes", "fragment"),
    [
        ({"AWS.x": {"DataType": "String", "StringValue": "v"}}, "is invalid"),
        ({"k": {"DataType": "Text", "StringValue": "v"}}, "invalid message attribute type"),
        ({"k": {"DataType": "Number", "StringValue": "ten"}}, "to a number"),
        ({"k": {"DataType": "String", "StringValue": ""}}, "non-empty"),
        ({f"k{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}, "exceeds"),
    ],
)
def test_bad_message_attributes_are_refused(attributes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SqsError) as refused:
        check_attributes(attributes)
    assert refused.value.shape == "InvalidParameterValue"
    assert fragment in refused.value.message


def test_receipt_handles_round_trip_and_junk_is_invalid() -> None:
    parsed = parse_receipt_handle(receipt_handle(42, "abc123", "m-1"))
    assert (parsed.seq, parsed.token, parsed.message_id) == (42, "abc123", "m-1")
    for junk in ("", "abc", base64.urlsafe_b64encode(b"jd1:x:y").decode(), None):
        with pytest.raises(SqsError) as refused:
            parse_receipt_handle(junk)
        assert refused.value.shape == "ReceiptHandleIsInvalid"


def test_attribute_selection_by_name_prefix_and_all() -> None:
    values = {"a.b": 1, "a.c": 2, "d": 3}
    assert select_attributes(values, ["All"]) == values
    assert select_attributes(values, [".*"]) == values
    assert select_attributes(values, ["a.*"]) == {"a.b": 1, "a.c": 2}
    assert select_attributes(values, ["d", "zzz"]) == {"d": 3}
    assert select_attributes(values, []) == {}


def _queue(fifo: bool, max_receives: int | None) -> QueueRecord:
    settings = QueueSettings(
        dead_letter_target="dlq" if max_receives else None, max_receive_count=max_receives
    )
    return QueueRecord("q", fifo, settings, "api", 0, 0)


def _message(seq: int, receives: int, group: str | None = None) -> StoredMessage:
    return StoredMessage(
        id=seq,
        queue="q",
        message_id=f"m{seq}",
        body="b",
        attributes={},
        system_attributes={},
        md5_body="",
        md5_attributes=None,
        md5_system_attributes=None,
        sent_ms=0,
        visible_ms=0,
        receive_count=receives,
        first_received_ms=None,
        receipt_token=None,
        group_id=group,
        dedup_id=None,
        dead_lettered_from=None,
    )


def test_plan_receive_dead_letters_messages_received_max_times() -> None:
    plan = plan_receive(_queue(False, 3), [_message(1, 3), _message(2, 2), _message(3, 5)], 10)
    assert (plan.deliver, plan.dead_letter) == ([2], [1, 3])
    assert plan_receive(_queue(False, None), [_message(1, 99)], 10).deliver == [1]


def test_plan_receive_respects_the_limit() -> None:
    plan = plan_receive(_queue(False, None), [_message(i, 0) for i in range(5)], 2)
    assert plan.deliver == [0, 1]


def test_plan_receive_fifo_stops_a_group_at_its_dead_letter() -> None:
    candidates = [_message(1, 1, "a"), _message(2, 0, "a"), _message(3, 0, "b")]
    plan = plan_receive(_queue(True, 1), candidates, 10)
    assert (plan.deliver, plan.dead_letter) == ([3], [1])
