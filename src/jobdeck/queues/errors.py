"""SQS's errors: the modeled exception name, the legacy query code, the HTTP status.

AWS JSON 1.0 clients read the exception from ``__type``; because SQS moved from the
query protocol, botocore reads the ``x-amzn-query-error`` header (``CODE;Sender``) for
the ``Error.Code`` a ``ClientError`` shows, and the shape name for the exception class.
"""

from __future__ import annotations

# shape name -> (legacy query error code, HTTP status), as real SQS answers them.
ERROR_CODES: dict[str, tuple[str, int]] = {
    "QueueDoesNotExist": ("AWS.SimpleQueueService.NonExistentQueue", 400),
    "QueueNameExists": ("QueueAlreadyExists", 400),
    "QueueDeletedRecently": ("AWS.SimpleQueueService.QueueDeletedRecently", 400),
    "ReceiptHandleIsInvalid": ("ReceiptHandleIsInvalid", 400),
    "MessageNotInflight": ("AWS.SimpleQueueService.MessageNotInflight", 400),
    "PurgeQueueInProgress": ("AWS.SimpleQueueService.PurgeQueueInProgress", 403),
    "BatchEntryIdsNotDistinct": ("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400),
    "BatchRequestTooLong": ("AWS.SimpleQueueService.BatchRequestTooLong", 400),
    "EmptyBatchRequest": ("AWS.SimpleQueueService.EmptyBatchRequest", 400),
    "InvalidBatchEntryId": ("AWS.SimpleQueueService.InvalidBatchEntryId", 400),
    "TooManyEntriesInBatchRequest": ("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400),
    "UnsupportedOperation": ("AWS.SimpleQueueService.UnsupportedOperation", 400),
    "InvalidAttributeName": ("InvalidAttributeName", 400),
    "InvalidAttributeValue": ("InvalidAttributeValue", 400),
    "InvalidMessageContents": ("InvalidMessageContents", 400),
    "OverLimit": ("OverLimit", 403),
    "InvalidAddress": ("InvalidAddress", 404),
    "InvalidSecurity": ("InvalidSecurity", 403),
    "RequestThrottled": ("RequestThrottled", 403),
    "ResourceNotFoundException": ("ResourceNotFoundException", 404),
    # Not modeled as shapes, but answered by SQS with these codes.
    "InvalidParameterValue": ("InvalidParameterValue", 400),
    "MissingParameter": ("MissingParameter", 400),
    "MissingAuthenticationToken": ("MissingAuthenticationToken", 403),
    "InvalidAction": ("InvalidAction", 400),
    "UnknownOperationException": ("InvalidAction", 400),
    "SerializationException": ("SerializationException", 400),
    "AccessDenied": ("AccessDenied", 403),
    "IncompleteSignature": ("IncompleteSignature", 400),
    "InvalidClientTokenId": ("InvalidClientTokenId", 403),
    "SignatureDoesNotMatch": ("SignatureDoesNotMatch", 403),
    "RequestEntityTooLarge": ("RequestEntityTooLarge", 413),
    "MethodNotAllowed": ("MethodNotAllowed", 405),
    "InternalFailure": ("InternalFailure", 500),
}

# The namespace of ``__type``; a few generic errors come from AWS's common namespace.
_SQS_NAMESPACE = "com.amazonaws.sqs#"
_COMMON_NAMESPACE = "com.amazon.coral.service#"
_COMMON = {
    "MissingAuthenticationToken",
    "UnknownOperationException",
    "InternalFailure",
    "SerializationException",
    "RequestEntityTooLarge",
    "MethodNotAllowed",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
}


class SqsError(Exception):
    """A request refused the way SQS refuses it."""

    def __init__(self, shape: str, message: str) -> None:
        super().__init__(message)
        if shape not in ERROR_CODES:
            raise ValueError(f"unknown SQS error {shape!r}")
        self.shape = shape
        self.message = message

    @property
    def query_code(self) -> str:
        return ERROR_CODES[self.shape][0]

    @property
    def status(self) -> int:
        return ERROR_CODES[self.shape][1]

    @property
    def sender_fault(self) -> bool:
        return self.status < 500

    @property
    def json_type(self) -> str:
        namespace = _COMMON_NAMESPACE if self.shape in _COMMON else _SQS_NAMESPACE
        return namespace + self.shape

    @property
    def query_error_header(self) -> str:
        return f"{self.query_code};{'Sender' if self.sender_fault else 'Receiver'}"


def invalid_parameter(message: str) -> SqsError:
    return SqsError("InvalidParameterValue", message)


def missing_parameter(name: str) -> SqsError:
    return SqsError("MissingParameter", f"The request must contain the parameter {name}.")


def no_such_queue() -> SqsError:
    return SqsError("QueueDoesNotExist", "The specified queue does not exist.")
