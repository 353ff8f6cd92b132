"""Reading SQS request parameters in their JSON shapes, with SQS's own refusals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from jobdeck.queues import messages as msg
from jobdeck.queues.errors import SqsError, invalid_parameter, missing_parameter, no_such_queue

Params = Mapping[str, Any]
Result = dict[str, Any]


def queue_name_from_url(url: object) -> str:
    """The queue a QueueUrl names: its last path segment, whatever the host. A URL that
    names no queue names one that does not exist, as SQS answers it."""
    if not isinstance(url, str):
        raise invalid_parameter("Value for parameter QueueUrl is invalid: it must be a string.")
    path = urlsplit(url).path if "://" in url else url
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise no_such_queue()
    return parts[-1]


def receive_limit(params: Params) -> int:
    limit = as_int(params.get("MaxNumberOfMessages", 1), "MaxNumberOfMessages")
    if not 1 <= limit <= msg.MAX_RECEIVE_MESSAGES:
        raise invalid_parameter(
            f"Value {limit} for parameter MaxNumberOfMessages is invalid. Reason: Must be "
            "between 1 and 10, if provided."
        )
    return limit


def wait_seconds(params: Params, queue_default: int | None = None) -> int:
    raw = params.get("WaitTimeSeconds")
    if raw is None:
        return queue_default or 0
    seconds = as_int(raw, "WaitTimeSeconds")
    if not 0 <= seconds <= msg.MAX_WAIT_SECONDS:
        raise invalid_parameter(
            f"Value {seconds} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 "
            "and <= 20, if provided."
        )
    return seconds


def required(params: Params, name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise missing_parameter(name)
    return value


def as_int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_parameter(f"Value {value} for parameter {name} is invalid.") from None


def string_map(value: Any, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_parameter(f"{name} must be a map of strings.")
    return {str(k): str(v) for k, v in value.items()}


def entries(params: Params, action: str) -> list[dict[str, Any]]:
    entries = params.get("Entries") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise invalid_parameter("Entries must be a list of batch entries.")
    msg.check_batch_ids([e.get("Id") for e in entries], action)
    return entries


def failure(entry_id: str, refused: SqsError) -> Result:
    return {
        "Id": entry_id,
        "SenderFault": refused.sender_fault,
        "Code": refused.query_code,
        "Message": refused.message,
    }
