"""Message semantics of SQS as pure functions: validation, MD5s, receipt handles,
what a receive delivers or dead-letters, and what a received message looks like.

Nothing here reads a clock or the store; times are milliseconds passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobdeck.queues.errors import SqsError, invalid_parameter
from jobdeck.store.queue_records import QueueRecord, StoredMessage

# FIFO deduplication window, as in SQS.
DEDUP_WINDOW_MS = 5 * 60 * 1000
MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 1_048_576
MAX_MESSAGE_ATTRIBUTES = 10
MAX_RECEIVE_MESSAGES = 10
MAX_WAIT_SECONDS = 20

# XML 1.0 characters, which is what SQS lets a body and attribute values contain.
_INVALID_CHARACTERS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_DATA_TYPE = re.compile(r"(String|Number|Binary)(\.[A-Za-z0-9_.-]{1,245})?")
_TAG = re.compile(r"[!-~]{1,128}")  # group and deduplication ids: printable ASCII
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")

SYSTEM_ATTRIBUTE_NAMES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageDeduplicationId",
    "MessageGroupId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)
LOCAL_SENDER_ID = "AIDAJOBDECKLOCALSENDER"


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def attribute_bytes(value: Mapping[str, Any]) -> bytes:
    """The value of a message attribute as bytes (a Binary value arrives as base64)."""
    if value["DataType"].startswith("Binary"):
        return base64.b64decode(value["BinaryValue"])
    return str(value["StringValue"]).encode("utf-8")


def md5_of_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str | None:
    """MD5OfMessageAttributes exactly as SQS computes it: for each attribute in name
    order, the length-prefixed name and data type, a transport byte (1 string, 2
    binary), then the length-prefixed value. None when there are no attributes."""
    if not attributes:
        return None
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        value = attributes[name]
        data_type = str(value["DataType"])
        for part in (name.encode("utf-8"), data_type.encode("utf-8")):
            digest.update(struct.pack("!I", len(part)) + part)
        payload = attribute_bytes(value)
        digest.update(b"\x02" if data_type.startswith("Binary") else b"\x01")
        digest.update(struct.pack("!I", len(payload)) + payload)
    return digest.hexdigest()


def check_body(body: object) -> str:
    if not isinstance(body, str) or body == "":
        raise SqsError("MissingParameter", "The request must contain the parameter MessageBody.")
    if _INVALID_CHARACTERS.search(body):
        raise SqsError(
            "InvalidMessageContents",
            "Invalid binary character in the message body; SQS allows #x9 | #xA | #xD | "
            "#x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
        )
    return body


def check_attributes(attributes: object, what: str = "MessageAttributes") -> dict[str, Any]:
    """Validated message attributes in their JSON form; raises as SQS does."""
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise invalid_parameter(f"{what} must be a map of attribute names to values.")
    if len(attributes) > MAX_MESSAGE_ATTRIBUTES:
        raise invalid_parameter(
            f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum "
            f"[{MAX_MESSAGE_ATTRIBUTES}]."
        )
    checked: dict[str, Any] = {}
    for name, value in attributes.items():
        lowered = str(name).lower()
        if (
            not _ATTRIBUTE_NAME.fullmatch(str(name))
            or lowered.startswith(("aws.", "amazon."))
            or name.startswith(".")
            or name.endswith(".")
            or ".." in name
        ):
            raise invalid_parameter(f"Message attribute name '{name}' is invalid.")
        if not isinstance(value, dict) or not isinstance(value.get("DataType"), str):
            raise invalid_parameter(f"The message attribute '{name}' must contain a DataType.")
        data_type = value["DataType"]
        if not _DATA_TYPE.fullmatch(data_type):
            raise invalid_parameter(
                f"The message attribute '{name}' has an invalid message attribute type, "
                "the set of supported type prefixes is Binary, Number, and String."
            )
        if data_type.startswith("Binary"):
            raw = value.get("BinaryValue")
            try:
                ok = (
                    isinstance(raw, str)
                    and raw != ""
                    and bool(base64.b64decode(raw, validate=True))
                )
            except (binascii.Error, ValueError):
                ok = False
            if not ok:
                raise invalid_parameter(
                    f"The message attribute '{name}' must contain a BinaryValue."
                )
            checked[name] = {"DataType": data_type, "BinaryValue": raw}
        else:
            text = value.get("StringValue")
            if not isinstance(text, str) or text == "":
                raise invalid_parameter(
                    f"The message attribute '{name}' must contain non-empty message attribute "
                    "value for message attribute type 'String'."
                    if data_type.startswith("String")
                    else f"The message attribute '{name}' must contain a StringValue."
                )
            if data_type.startswith("Number") and not _is_number(text):
                raise invalid_parameter(
                    f"Can't cast the value of message (user) attribute '{name}' to a number."
                )
            if _INVALID_CHARACTERS.search(text):
                raise SqsError(
                    "InvalidMessageContents",
                    f"The message attribute '{name}' contains an invalid character.",
                )
            checked[name] = {"DataType": data_type, "StringValue": text}
    return checked


def check_system_attributes(attributes: object) -> dict[str, Any]:
    checked = check_attributes(attributes, "MessageSystemAttributes")
    for name, value in checked.items():
        if name != "AWSTraceHeader" or value["DataType"] != "String":
            raise invalid_parameter(
                f"Message system attribute name '{name}' is invalid: only AWSTraceHeader "
                "(a String) can be set."
            )
    return checked


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def message_size(body: str, attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """The size SQS counts against MaximumMessageSize: body plus each attribute's name,
    data type and value."""
    size = len(body.encode("utf-8"))
    for name, value in attributes.items():
        size += len(name.encode("utf-8")) + len(str(value["DataType"]).encode("utf-8"))
        size += len(attribute_bytes(value))
    return size


def check_tag(value: object, name: str) -> str:
    if not isinstance(value, str) or not _TAG.fullmatch(value):
        raise invalid_parameter(
            f"Value {value!r} for parameter {name} is invalid. Reason: it must be 1 to 128 "
            "printable ASCII characters."
        )
    return value


def check_batch_ids(ids: Sequence[object], action: str = "SendMessageBatch") -> None:
    """The batch rules SQS applies before looking at any entry of ``action``."""
    if not ids:
        raise SqsError(
            "EmptyBatchRequest",
            f"There should be at least one {action}RequestEntry in the request.",
        )
    if len(ids) > MAX_BATCH_ENTRIES:
        raise SqsError(
            "TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_BATCH_ENTRIES}. "
            f"You have sent {len(ids)}.",
        )
    for entry_id in ids:
        if not isinstance(entry_id, str) or not _BATCH_ID.fullmatch(entry_id):
            raise SqsError(
                "InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and "
                "underscores. It can be at most 80 letters long.",
            )
    seen: set[object] = set()
    for entry_id in ids:
        if entry_id in seen:
            raise SqsError("BatchEntryIdsNotDistinct", f"Id {entry_id} repeated.")
        seen.add(entry_id)


def content_dedup_id(body: str) -> str:
    """The deduplication id of content-based deduplication: SHA-256 of the body."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def sequence_number(message_seq: int) -> str:
    return f"{message_seq:020d}"


# -- receipt handles --------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """What a receipt handle names: the message (its sequence and id) and the receive
    that handed it out (its token)."""

    seq: int
    token: str
    message_id: str | None  # None in handles of the first format, which lacked it


def receipt_handle(message_seq: int, token: str, message_id: str) -> str:
    raw = f"jd2:{message_seq}:{token}:{message_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii")


def parse_receipt_handle(handle: object) -> Receipt:
    """The message and the receive a handle names; ReceiptHandleIsInvalid otherwise."""
    parts: list[str] = []
    if isinstance(handle, str):
        try:
            parts = base64.urlsafe_b64decode(handle.encode("ascii")).decode().split(":")
        except (ValueError, UnicodeError, binascii.Error):
            parts = []
    if len(parts) >= 3 and parts[1].isdigit() and len(parts[1]) <= 19 and parts[2]:
        if parts[0] == "jd1" and len(parts) == 3:
            return Receipt(int(parts[1]), parts[2], None)
        if parts[0] == "jd2" and len(parts) == 4 and parts[3]:
            return Receipt(int(parts[1]), parts[2], parts[3])
    raise SqsError("ReceiptHandleIsInvalid", f'The input receipt handle "{handle}" is not valid.')


def expired_handle(handle: object) -> SqsError:
    return invalid_parameter(
        f"Value {handle} for parameter ReceiptHandle is invalid. Reason: The receipt handle "
        "has expired."
    )


# -- receiving --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivePlan:
    deliver: list[int]
    dead_letter: list[int]


def plan_receive(
    queue: QueueRecord, candidates: Sequence[StoredMessage], limit: int
) -> ReceivePlan:
    """Which of the receivable ``candidates`` (in the store's order) to deliver, and
    which have been received ``max_receive_count`` times and move to the dead-letter
    queue instead. FIFO: a group stops at its first dead letter, so that order holds."""
    settings = queue.settings
    redrive = settings.dead_letter_target is not None and settings.max_receive_count is not None
    deliver: list[int] = []
    dead: list[int] = []
    stopped_groups: set[str | None] = set()
    for message in candidates:
        if len(deliver) >= limit:
            break
        if queue.fifo and message.group_id in stopped_groups:
            continue
        if redrive and message.receive_count >= (settings.max_receive_count or 0):
            dead.append(message.id)
            if queue.fifo:
                stopped_groups.add(message.group_id)
            continue
        deliver.append(message.id)
    return ReceivePlan(deliver, dead)


def wanted_names(requested: Iterable[str]) -> tuple[bool, list[str]]:
    """(all wanted, name patterns) from MessageAttributeNames: ``All``, ``.*``,
    ``prefix.*`` or exact names."""
    names = list(requested)
    return ("All" in names or ".*" in names), names


def select_attributes(attributes: Mapping[str, Any], requested: Iterable[str]) -> dict[str, Any]:
    every, names = wanted_names(requested)
    if every:
        return dict(attributes)
    chosen: dict[str, Any] = {}
    for name, value in attributes.items():
        for pattern in names:
            if name == pattern or (pattern.endswith(".*") and name.startswith(pattern[:-1])):
                chosen[name] = value
                break
    return chosen


def system_attributes(
    message: StoredMessage, requested: Iterable[str], *, fifo: bool, source_arn: str | None
) -> dict[str, str]:
    """The system attributes a received message carries, of those ``requested``."""
    names = set(requested)
    if "All" in names:
        names = set(SYSTEM_ATTRIBUTE_NAMES)
    values: dict[str, str] = {
        "SenderId": LOCAL_SENDER_ID,
        "SentTimestamp": str(message.sent_ms),
        "ApproximateReceiveCount": str(message.receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.first_received_ms or message.sent_ms),
    }
    if fifo:
        values["SequenceNumber"] = sequence_number(message.id)
        if message.group_id is not None:
            values["MessageGroupId"] = message.group_id
        if message.dedup_id is not None:
            values["MessageDeduplicationId"] = message.dedup_id
    trace = message.system_attributes.get("AWSTraceHeader")
    if trace:
        values["AWSTraceHeader"] = str(trace["StringValue"])
    if source_arn is not None:
        values["DeadLetterQueueSourceArn"] = source_arn
    return {name: value for name, value in values.items() if name in names}
