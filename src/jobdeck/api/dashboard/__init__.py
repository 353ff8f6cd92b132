"""The dashboard: server-rendered pages of the batch side at a glance, with a small
script shipped here (no build step, nothing fetched from elsewhere).

``dashboard_routes(app)`` gives the routes to mount at the root of the HTTP server,
beside the JSON API under ``/api/v1``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from jobdeck.api.dashboard.pages import STATIC_DIR, Dashboard
from jobdeck.app import Application


def dashboard_routes(app: Application) -> list[BaseRoute]:
    board = Dashboard(app)
    return [
        Route("/", board.overview, methods=["GET"], name="dashboard"),
        Route("/schedules/{name}", board.schedule, methods=["GET"]),
        Route("/schedules/{name}/{action}", board.act, methods=["POST"]),
        Route("/runs", board.runs, methods=["GET"]),
        Route("/runs/{run_id}", board.run, methods=["GET"]),
        Route("/runs/{run_id}/cancel", board.cancel, methods=["POST"]),
        Route("/runs/{run_id}/log", board.run_log, methods=["GET"]),
        Route("/workers/{name}", board.worker, methods=["GET"]),
        Route("/queues/{name}", board.queue, methods=["GET"]),
        Route("/queues/{name}/redrive", board.redrive, methods=["POST"]),
        Route("/commands/{name}", board.command, methods=["GET"]),
        Route("/commands/{name}/run", board.run_command, methods=["POST"]),
        Route("/pools/{name}", board.pool, methods=["GET"]),
        Route("/audit", board.audit, methods=["GET"]),
        Route("/revisions", board.revisions, methods=["GET"]),
        Route("/revisions/{number}", board.revision, methods=["GET"]),
        Route("/favicon.ico", board.favicon, methods=["GET"]),
        Mount("/assets", StaticFiles(directory=STATIC_DIR), name="dashboard-assets"),
    ]


__all__ = ["dashboard_routes"]
