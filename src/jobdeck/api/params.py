"""What every handler needs from a request: the application, who acts, and parameters."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request

from jobdeck.api.errors import bad_request, not_found
from jobdeck.units import parse_instant

if TYPE_CHECKING:
    from jobdeck.app import Application

USER_HEADER = "x-jobdeck-user"
MAX_LIMIT = 500
# The largest id the stores hold (a signed 64-bit column); a larger one names nothing.
MAX_ID = 2**63 - 1


def application(request: Request) -> Application:
    found: Application = request.app.state.application
    return found


def is_loopback_address(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def actor(request: Request) -> str:
    """Who acts: on loopback the caller may name themselves (the CLI sends its user);
    from elsewhere, and by default, ``api@<client address>``."""
    client = request.client.host if request.client else None
    named = request.headers.get(USER_HEADER, "").strip()
    if named and is_loopback_address(client):
        return named[:200]
    return f"api@{client or 'unknown'}"


def integer(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"?{name}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise bad_request(f"?{name}={value} is out of range: use {low} to {high}")
    return value


def path_id(request: Request, name: str, what: str) -> int:
    """An ``{name:int}`` of the path; one no store column can hold is simply not there."""
    value: int = request.path_params[name]
    if value > MAX_ID:
        raise not_found(f"no {what} with id {value}")
    return value


def choice(request: Request, name: str, allowed: Iterable[str]) -> str | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    options = list(allowed)
    if text not in options:
        raise bad_request(f"?{name}={text!r} is not one of: {', '.join(options)}")
    return text


def moment(request: Request, name: str) -> datetime | None:
    """An ISO 8601 time; without a zone it is taken as UTC."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise bad_request(
            f"?{name}={text!r} is not an ISO 8601 time (e.g. 2026-11-28T09:00:00Z)"
        ) from None


def page(request: Request, default: int = 50) -> tuple[int, int]:
    """``limit`` and ``offset`` of a paginated listing."""
    limit = integer(request, "limit", default, low=1, high=MAX_LIMIT)
    offset = integer(request, "offset", 0, low=0, high=2**62)
    return limit, offset


def paged(request: Request, items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    """A page of a listing fetched with ``limit + 1`` rows: the extra row only says that
    there is a next page, whose link keeps every other parameter of this request."""
    more = len(items) > limit
    shown = items[:limit]
    following = None
    if more:
        query = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset")}
        query.update(limit=str(limit), offset=str(offset + limit))
        following = f"{request.url.path}?{urlencode(query)}"
    return {"items": shown, "limit": limit, "offset": offset, "next": following}
