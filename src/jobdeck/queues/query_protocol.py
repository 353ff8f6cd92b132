"""The older SQS query protocol: form-encoded ``Action=...`` requests, XML answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from jobdeck.queues.errors import SqsError

if TYPE_CHECKING:
    from jobdeck.queues.endpoint import SqsEndpoint


async def handle(endpoint: SqsEndpoint, request: Request, request_id: str) -> Response:
    from jobdeck.queues.endpoint import json_error

    return json_error(SqsError("InvalidAction", "The query protocol is not served."), request_id)
