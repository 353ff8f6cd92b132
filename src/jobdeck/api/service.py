"""The HTTP side of one Application: the API under /api/v1, health, metrics, the OpenAPI
document, the login form and the dashboard, behind access control when not on loopback."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from jobdeck.api import actions, auth, backfill, ping, resources, runs
from jobdeck.api.approvals import approval_routes
from jobdeck.api.dashboard import dashboard_routes
from jobdeck.api.errors import ApiError, Json, api_error, http_error, server_error
from jobdeck.api.guard import HostRule, RequestGuard
from jobdeck.api.invocations import invocation_routes
from jobdeck.api.metrics import Metrics, Source
from jobdeck.api.openapi import openapi_document
from jobdeck.api.params import application
from jobdeck.api.queue_metrics import queue_source
from jobdeck.api.views import iso
from jobdeck.slack import slack_routes

if TYPE_CHECKING:
    from jobdeck.app import Application

API_PREFIX = "/api/v1"


async def healthz(request: Request) -> Response:
    app = application(request)
    return Json(
        {
            "status": "ok",
            "revision": app.applied.revision if app.applied else None,
            "started_at": iso(app.started_at),
            "isolation": app.executor.pools.isolation,
        }
    )


async def metrics(request: Request) -> Response:
    found: Metrics = request.app.state.metrics
    body = await run_in_threadpool(found.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return Json(openapi_document())


def api_routes(app: Application) -> list[BaseRoute]:
    """The routes under ``/api/v1``."""
    return [
        *resources.ROUTES,
        *runs.ROUTES,
        *backfill.ROUTES,
        *actions.ROUTES,
        *invocation_routes(app),
        *approval_routes(app),
    ]


def create_api(
    app: Application,
    *,
    token: str | None = None,
    metric_sources: Iterable[Source] = (),
    hosts: HostRule | None = None,
) -> Starlette:
    """The ASGI application serving ``app``; with ``token``, every request but the
    health check and the login form must carry it (see :mod:`jobdeck.api.auth`).
    ``metric_sources`` add other features' metric families to ``/metrics``; ``hosts``
    are the names it answers to (by default those of a loopback server; see
    :mod:`jobdeck.api.guard`)."""
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *ping.ROUTES,
        Mount(API_PREFIX, routes=api_routes(app)),
        *auth.ROUTES,
        *dashboard_routes(app),
        *slack_routes(app),
    ]
    middleware = [Middleware(RequestGuard, hosts=hosts or HostRule.for_bind("127.0.0.1"))]
    if token is not None:
        middleware.append(Middleware(auth.AccessControl, token=token))
    service = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            ApiError: api_error,
            HTTPException: http_error,
            Exception: server_error,
        },
    )
    service.state.application = app
    service.state.token = token
    ping.install(service.state)
    queues = functools.partial(queue_source, app)
    # Histograms cover the runs since the engine started, also those created before
    # the HTTP side came up.
    service.state.metrics = Metrics(app, sources=[queues, *metric_sources], since=app.started_at)
    return service
