"""The HTTP side: the API under /api/v1, health, metrics, access control, the dashboard.

``create_api`` is imported on first use, so that the command line, which shares the
JSON views in :mod:`jobdeck.api.views`, does not load the web stack to print a table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobdeck.api.service import create_api

__all__ = ["create_api"]


def __getattr__(name: str) -> Any:
    if name == "create_api":
        from jobdeck.api.service import create_api

        return create_api
    raise AttributeError(f"module 'jobdeck.api' has no attribute {name!r}")
