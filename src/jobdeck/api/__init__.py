"""The HTTP side: the API under /api/v1, health, metrics, access control, the dashboard."""

from jobdeck.api.service import create_api

__all__ = ["create_api"]
