"""The dashboard's HTTP endpoints: server-rendered pages, the log follower, the buttons.

Every link in the pages is relative (a ``<base>`` points at the dashboard's root), so the
dashboard works wherever it is mounted and behind the login of access control; the
page's script only fetches its own URLs, with the browser's credentials.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from jobdeck.api.dashboard import actions, present, things, views
from jobdeck.api.params import MAX_ID
from jobdeck.api.remote_log import elsewhere, fetch, forwarded
from jobdeck.app import Application
from jobdeck.store.records import ACTIVE_STATUSES

STATIC_DIR = Path(__file__).parent / "static"
# Pages ask for a fresh copy of themselves this often (milliseconds).
REFRESH_MS = 5000
LOG_POLL_MS = 1000


def make_templates() -> Jinja2Templates:
    env = Environment(
        loader=PackageLoader("jobdeck.api.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        utc=present.utc,
        in_zone=present.in_zone,
        size=present.size,
        duration=present.duration,
        trigger_text=present.trigger_text,
        status_class=present.status_class,
        run_duration=present.run_duration,
        event_facts=present.event_facts,
        reason_text=present.reason_text,
    )
    env.globals.update(relative=present.relative, percent=present.percent, span=present.span)
    return Jinja2Templates(env=env)


def base_href(request: Request) -> str:
    """The relative way from this page back to the dashboard's root: ``./`` or ``../``."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    depth = path.strip("/").count("/")
    return "../" * depth if depth else "./"


class Dashboard:
    def __init__(self, app: Application) -> None:
        self.app = app
        self.templates = make_templates()

    def page(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        status: int = 200,
        *,
        live: bool = True,
    ) -> Response:
        app = self.app
        context = {
            "base": base_href(request),
            "now": app.clock.now(),
            "project": app.catalog.project if app.catalog else None,
            "refresh_ms": REFRESH_MS,
            "log_poll_ms": LOG_POLL_MS,
            "live": live and status == 200,
            # Behind access control the header offers to end the browser's session.
            "signed_in": getattr(request.app.state, "token", None) is not None,
            **context,
        }
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def overview(self, request: Request) -> Response:
        now = self.app.clock.now()
        context = await asyncio.to_thread(views.overview, self.app, now)
        return self.page(request, "overview.html", context)

    async def schedule(self, request: Request) -> Response:
        return await self._schedule(request, request.path_params["name"])

    async def _schedule(
        self,
        request: Request,
        name: str,
        *,
        error: str | None = None,
        confirm: str | None = None,
    ) -> Response:
        now = self.app.clock.now()
        context = await asyncio.to_thread(views.schedule_page, self.app, name, now)
        if context is None:
            return self._missing(
                request, f"There is no schedule named {name!r} in the applied revision."
            )
        confirm = confirm or request.query_params.get("confirm")
        started = _int(request.query_params.get("started"))
        started_run = None
        if started is not None:
            started_run = await asyncio.to_thread(self.app.store.runs.run, started)
        context.update(
            error=error,
            confirm=confirm if confirm in ("run", "suspend", "resume") else None,
            started=started_run if started_run and started_run.job == name else None,
            done=request.query_params.get("done"),
        )
        # A refused action shows the page again at the form's URL, with the message; it
        # does not refresh itself there (that URL only takes posts).
        return self.page(request, "schedule.html", context, live=error is None)

    async def run(self, request: Request, *, error: str | None = None) -> Response:
        run_id = _int(request.path_params["run_id"])
        context = None
        if run_id is not None:
            context = await asyncio.to_thread(views.run_page, self.app, run_id)
        if context is None:
            return self._missing(request, f"There is no run {request.path_params['run_id']}.")
        confirm = "cancel" if error else request.query_params.get("confirm")
        context.update(
            confirm=confirm if confirm == "cancel" else None,
            error=error,
            done=request.query_params.get("done"),
        )
        return self.page(request, "run.html", context, live=error is None)

    async def cancel(self, request: Request) -> Response:
        """The run page's confirmed Cancel button: the API's path, audited the same."""
        run_id = _int(request.path_params["run_id"])
        if not _same_origin(request):
            return Response("cross-origin form posts are refused", status_code=403)
        run = None if run_id is None else await asyncio.to_thread(self.app.store.runs.run, run_id)
        if run is None:
            return self._missing(request, f"There is no run {request.path_params['run_id']}.")
        form = await request.form()
        why = str(form.get("reason") or "").strip() or None
        try:
            actions.cancel(self.app, run, actions.actor_of(request), why)
        except actions.ActionRefused as exc:
            return await self.run(request, error=str(exc))
        # From /runs/ID/cancel, "../ID" is the run's page.
        return RedirectResponse(f"../{run.id}?done=cancelled", status_code=303)

    async def run_log(self, request: Request) -> Response:
        """What was appended to a run's log since ``offset``, and whether more may come."""
        run_id = _int(request.path_params["run_id"])
        offset = _int(request.query_params.get("offset", "0"))
        run = None if run_id is None else await asyncio.to_thread(self.app.store.runs.run, run_id)
        if run is None or offset is None or run_id is None:
            return JSONResponse({"error": "no such run, or a bad offset"}, status_code=404)
        path = self.app.log_path(run_id)
        if not forwarded(request.headers):
            # Run by another node of the cluster: its log is read there.
            where = await asyncio.to_thread(
                elsewhere, self.app.store, run, self.app.host, path.parent.exists()
            )
            if where is not None and where.url is not None:
                try:
                    answer = await fetch(
                        where, f"/runs/{run_id}/log", {"offset": str(offset)}, request.headers
                    )
                    return JSONResponse(
                        answer.json(),
                        status_code=answer.status_code,
                        headers={"Cache-Control": "no-store"},
                    )
                except (httpx.HTTPError, ValueError):
                    pass  # shown as a log this node lacks
        piece = await asyncio.to_thread(views.read_log, path, offset)
        return JSONResponse(
            {
                "text": piece.text,
                "start": piece.start,
                "offset": piece.end,
                "status": run.status,
                "active": run.status in ACTIVE_STATUSES,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def audit(self, request: Request) -> Response:
        page = max(0, _int(request.query_params.get("page", "0")) or 0)
        if page > MAX_ID // 100:  # its offset would not fit a store's column
            return self._missing(request, f"There is no audit page {page}.")
        context = await asyncio.to_thread(views.audit_page, self.app, page)
        return self.page(request, "audit.html", context)

    async def revisions(self, request: Request) -> Response:
        context = await asyncio.to_thread(views.revisions_page, self.app)
        return self.page(request, "revisions.html", context)

    async def revision(self, request: Request) -> Response:
        number = _int(request.path_params["number"])
        found = None
        if number is not None:
            found = await asyncio.to_thread(self.app.store.revisions.revision, number)
        if found is None:
            return self._missing(request, f"There is no revision {request.path_params['number']}.")
        return self.page(request, "revision.html", {"revision": found})

    # -- workers, queues, commands, pools, the run list ------------------------------------

    async def worker(self, request: Request) -> Response:
        name = request.path_params["name"]
        context = await asyncio.to_thread(things.worker_page, self.app, name, self.app.clock.now())
        if context is None:
            return self._missing(
                request, f"There is no worker named {name!r} in the applied revision."
            )
        return self.page(request, "worker.html", context)

    async def queue(self, request: Request, *, error: str | None = None) -> Response:
        name = request.path_params["name"]
        context = await asyncio.to_thread(things.queue_page, self.app, name, self.app.clock.now())
        if context is None:
            return self._missing(
                request, f"There is no queue named {name!r} in the applied revision."
            )
        confirm = "redrive" if error or request.query_params.get("confirm") == "redrive" else None
        context.update(error=error, confirm=confirm, done=request.query_params.get("done"))
        return self.page(request, "queue.html", context, live=error is None and confirm is None)

    async def command(
        self, request: Request, *, error: str | None = None, given: dict[str, str] | None = None
    ) -> Response:
        name = request.path_params["name"]
        context = await asyncio.to_thread(things.command_page, self.app, name)
        if context is None:
            return self._missing(
                request, f"There is no command named {name!r} in the applied revision."
            )
        started = _int(request.query_params.get("started"))
        started_run = (
            None if started is None else await asyncio.to_thread(self.app.store.runs.run, started)
        )
        confirm = error is not None or request.query_params.get("confirm") == "run"
        context.update(
            error=error,
            confirm="run" if confirm else None,
            given=given or {},
            started=started_run if started_run and started_run.job == name else None,
        )
        return self.page(request, "command.html", context, live=not confirm)

    async def pool(self, request: Request) -> Response:
        name = request.path_params["name"]
        context = await asyncio.to_thread(things.pool_page, self.app, name)
        if context is None:
            return self._missing(request, f"There is no pool named {name!r} in the catalog.")
        return self.page(request, "pool.html", context)

    async def runs(self, request: Request) -> Response:
        filters = things.RunFilters.of(dict(request.query_params))
        now = self.app.clock.now()
        context = await asyncio.to_thread(things.runs_page, self.app, filters, now)
        return self.page(request, "runs.html", context)

    async def redrive(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        if not _same_origin(request):
            return Response("cross-origin form posts are refused", status_code=403)
        try:
            done = await asyncio.to_thread(
                actions.redrive, self.app, name, actions.actor_of(request)
            )
        except actions.ActionRefused as exc:
            return await self.queue(request, error=str(exc))
        return RedirectResponse(f"../{name}?done={sum(done.moved.values())}", status_code=303)

    async def run_command(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        if not _same_origin(request):
            return Response("cross-origin form posts are refused", status_code=403)
        form = await request.form()
        given = {str(k)[6:]: str(v) for k, v in form.items() if str(k).startswith("param-")}
        try:
            run = await actions.invoke(self.app, name, given, actions.actor_of(request))
        except actions.ActionRefused as exc:
            return await self.command(request, error=str(exc), given=given)
        return RedirectResponse(f"../{name}?started={run.id}", status_code=303)

    async def favicon(self, request: Request) -> Response:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    # -- the buttons ------------------------------------------------------------------------

    async def act(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        action: str = request.path_params["action"]
        if action not in ("run", "suspend", "resume"):
            return self._missing(request, f"There is no action {action!r}.")
        if not _same_origin(request):
            return Response("cross-origin form posts are refused", status_code=403)
        form = await request.form()
        actor = actions.actor_of(request)
        try:
            if action == "run":
                run = actions.run_now(self.app, name, actor)
                return _back(name, f"started={run.id}")
            if action == "suspend":
                reason = str(form.get("reason") or "")
                until = str(form.get("until") or "")
                actions.suspend(self.app, name, actor, reason, until)
                return _back(name, "done=suspended")
            actions.resume(self.app, name, actor)
            return _back(name, "done=resumed")
        except actions.ActionRefused as exc:
            return await self._schedule(request, name, error=str(exc), confirm=action)

    def _missing(self, request: Request, message: str) -> Response:
        return self.page(request, "missing.html", {"message": message}, status=404)


def _back(name: str, query: str) -> Response:
    # From /schedules/NAME/ACTION, "../NAME" is the schedule's page.
    return RedirectResponse(f"../{name}?{query}", status_code=303)


def _same_origin(request: Request) -> bool:
    """A form post that another site makes the browser send carries that site's Origin;
    refuse it: on loopback there is no token to stop it. Only the host and port are
    compared, so a proxy that ends TLS in front of the server does not matter."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", request.url.netloc)


def _int(text: str | None) -> int | None:
    """A whole number a store column can hold (ids, offsets), or None."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if abs(value) <= MAX_ID else None
