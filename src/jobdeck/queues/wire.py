"""Reading an SQS request off the wire, whichever protocol it speaks."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from jobdeck.queues.errors import SqsError

# The largest request body read: a batch of 1 MiB of messages, JSON-escaped or
# form-encoded, with room to spare. Larger bodies are refused before being read whole.
MAX_BODY_BYTES = 8 * 1024 * 1024


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request's body, refused before it is read whole when over ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and len(declared) < 19 and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody to answer; a refusal rather than a logged failure.
        raise SqsError("InvalidParameterValue", "The request body ended early.") from None
    return b"".join(chunks)


def _too_large(limit: int) -> SqsError:
    return SqsError(
        "RequestEntityTooLarge", f"The request body is over the endpoint's {limit} bytes."
    )
