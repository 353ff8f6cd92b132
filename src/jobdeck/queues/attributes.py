"""Queue names, ARNs and attributes: from SQS's wire strings to settings and back (pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

from jobdeck.queues.errors import SqsError, invalid_parameter
from jobdeck.store.queue_records import QueueCounts, QueueRecord, QueueSettings

# The account and region the endpoint presents; any SigV4 credentials are accepted.
LOCAL_ACCOUNT_ID = "000000000000"
LOCAL_REGION = "us-east-1"

QUEUE_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")
FIFO_SUFFIX = ".fifo"

# Attributes that decide behaviour, with their valid ranges (inclusive).
_RANGES: dict[str, tuple[str, int, int]] = {
    "VisibilityTimeout": ("visibility_timeout", 0, 43_200),
    "DelaySeconds": ("delay_seconds", 0, 900),
    "MessageRetentionPeriod": ("retention_seconds", 60, 1_209_600),
    "MaximumMessageSize": ("max_message_size", 1_024, 1_048_576),
    "ReceiveMessageWaitTimeSeconds": ("receive_wait_seconds", 0, 20),
}
# Accepted and echoed back, with no effect on one machine.
_KEPT = {
    "Policy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "RedriveAllowPolicy",
}
# Kept attributes that an empty value removes instead of setting.
_REMOVABLE = {"Policy", "RedriveAllowPolicy", "KmsMasterKeyId"}
_FIFO_ONLY_KEPT = {"DeduplicationScope", "FifoThroughputLimit"}
_READ_ONLY = {
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
}
ALL_ATTRIBUTE_NAMES = (
    sorted(_READ_ONLY)
    + sorted(_RANGES)
    + ["RedrivePolicy", "FifoQueue", "ContentBasedDeduplication"]
    + sorted(_KEPT | _FIFO_ONLY_KEPT)
)


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{name}"


def name_from_arn(arn: str) -> str | None:
    parts = arn.split(":")
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "sqs"]:
        return None
    return parts[5]


def check_queue_name(name: str, fifo: bool) -> None:
    """Refuses a name SQS would refuse, with SQS's own reason."""
    stem = name[: -len(FIFO_SUFFIX)] if name.endswith(FIFO_SUFFIX) else name
    if len(name) > 80 or not QUEUE_NAME_RE.fullmatch(stem):
        raise invalid_parameter(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
        )
    if fifo != name.endswith(FIFO_SUFFIX):
        raise invalid_parameter(
            "The name of a FIFO queue can only include alphanumeric characters, hyphens, "
            "or underscores, must end with .fifo suffix and be 1 to 80 in length"
            if fifo
            else "A queue named with the .fifo suffix must be created with FifoQueue=true"
        )


def _integer(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise SqsError(
            "InvalidAttributeValue",
            f"Invalid value for the parameter {name}. Reason: must be an integer "
            f"from {low} to {high}.",
        )
    return number


def _boolean(name: str, value: str) -> bool:
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
    return text == "true"


def apply_attributes(
    settings: QueueSettings, attributes: Mapping[str, str], *, fifo: bool, creating: bool
) -> QueueSettings:
    """``settings`` changed by the wire ``attributes`` of CreateQueue/SetQueueAttributes.

    ``FifoQueue`` is decided from the name by the caller; here it may only agree.
    The dead-letter target's existence is checked by the caller, which has the store.
    """
    changes: dict[str, object] = {}
    extra = dict(settings.extra)
    for name, value in attributes.items():
        if name in _RANGES:
            field, low, high = _RANGES[name]
            changes[field] = _integer(name, value, low, high)
        elif name == "FifoQueue":
            if not creating:
                raise SqsError(
                    "InvalidAttributeName", "FifoQueue can only be set when creating a queue."
                )
            if _boolean(name, value) != fifo:
                raise invalid_parameter(
                    "The FifoQueue attribute must match the name: a FIFO queue's name "
                    "ends with .fifo"
                )
        elif name == "ContentBasedDeduplication":
            if not fifo:
                raise SqsError(
                    "InvalidAttributeName", f"Unknown Attribute {name}: only FIFO queues have it."
                )
            changes["content_based_deduplication"] = _boolean(name, value)
        elif name == "RedrivePolicy":
            target, count = _redrive_policy(value)
            changes["dead_letter_target"] = target
            changes["max_receive_count"] = count
        elif name in _REMOVABLE and str(value) == "":
            extra.pop(name, None)  # as SQS: an empty policy or key removes it
        elif name in _KEPT or (fifo and name in _FIFO_ONLY_KEPT):
            extra[name] = str(value)
        else:
            raise SqsError("InvalidAttributeName", f"Unknown Attribute {name}.")
    return replace(settings, extra=extra, **changes)  # type: ignore[arg-type]


def _redrive_policy(value: str) -> tuple[str | None, int | None]:
    if not str(value).strip():
        return None, None
    try:
        policy = json.loads(value)
    except ValueError:
        policy = None
    if not isinstance(policy, dict):
        raise SqsError(
            "InvalidAttributeValue",
            "Value for parameter RedrivePolicy is invalid. Reason: Invalid JSON.",
        )
    target = name_from_arn(str(policy.get("deadLetterTargetArn", "")))
    if target is None:
        raise SqsError(
            "InvalidAttributeValue",
            "Value for parameter RedrivePolicy is invalid. Reason: "
            "deadLetterTargetArn must be an SQS queue ARN.",
        )
    count = _integer("RedrivePolicy.maxReceiveCount", policy.get("maxReceiveCount", ""), 1, 1000)
    return target, count


def render_attributes(
    queue: QueueRecord, counts: QueueCounts, names: Iterable[str]
) -> dict[str, str]:
    """The attributes GetQueueAttributes answers for ``names`` (``All`` for every one)."""
    wanted = set(names)
    if "All" in wanted:
        wanted = set(ALL_ATTRIBUTE_NAMES)
    s = queue.settings
    known: dict[str, str] = {
        "ApproximateNumberOfMessages": str(counts.visible),
        "ApproximateNumberOfMessagesNotVisible": str(counts.in_flight),
        "ApproximateNumberOfMessagesDelayed": str(counts.delayed),
        "CreatedTimestamp": str(queue.created_ms // 1000),
        "LastModifiedTimestamp": str(queue.modified_ms // 1000),
        "QueueArn": queue_arn(queue.name),
        "VisibilityTimeout": str(s.visibility_timeout),
        "DelaySeconds": str(s.delay_seconds),
        "MessageRetentionPeriod": str(s.retention_seconds),
        "MaximumMessageSize": str(s.max_message_size),
        "ReceiveMessageWaitTimeSeconds": str(s.receive_wait_seconds),
        "SqsManagedSseEnabled": "false",
    }
    if s.dead_letter_target is not None:
        known["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": queue_arn(s.dead_letter_target),
                "maxReceiveCount": s.max_receive_count,
            },
            separators=(",", ":"),
        )
    if queue.fifo:
        known["FifoQueue"] = "true"
        known["ContentBasedDeduplication"] = str(s.content_based_deduplication).lower()
        known["DeduplicationScope"] = "queue"
        known["FifoThroughputLimit"] = "perQueue"
    known.update(s.extra)
    unknown = wanted - set(ALL_ATTRIBUTE_NAMES)
    if unknown:
        raise SqsError("InvalidAttributeName", f"Unknown Attribute {sorted(unknown)[0]}.")
    return {name: known[name] for name in sorted(wanted) if name in known}
