"""One error shape for every failure of the API: ``{"error": {"code", "message"}}``.

Codes are stable words a script can branch on; messages say what was wrong and how to
fix it. The caller's mistakes are 4xx; only a fault of jobdeck itself is a 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobdeck.api.views import jsonable

log = logging.getLogger("jobdeck.api")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    415: "unsupported_media_type",
    422: "invalid",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


class Json(JSONResponse):
    """JSON whose datetimes are ISO 8601 UTC, not an encoding error."""

    def render(self, content: Any) -> bytes:
        return json.dumps(jsonable(content), ensure_ascii=False, separators=(",", ":")).encode()


def error_response(status: int, code: str, message: str, **headers: str) -> Response:
    return Json({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 in the same shape as ours."""
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    headers = dict(exc.headers or {})
    code = _CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(message), **headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(
        500, "internal", f"jobdeck failed to answer: {type(exc).__name__}; see the server's log"
    )


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; an empty body is an empty object."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad_request("the request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


async def json_fields(request: Request, *fields: str) -> dict[str, Any]:
    """The request's JSON object, which may hold only ``fields`` (each optional)."""
    body = await json_body(request)
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise bad_request(f"unknown field(s) {', '.join(unknown)}: use {', '.join(fields)}")
    return body
