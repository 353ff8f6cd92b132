"""The Slack bot: a Bolt ``AsyncApp`` wired to one Application.

HTTP mode (``SLACK_SIGNING_SECRET``) answers ``POST /slack/events``; Bolt verifies the
signature and the timestamp, so a forged or stale request gets 401 and reaches no
handler. Socket Mode (``SLACK_APP_TOKEN``) connects out to Slack instead, as a named loop
of the server. ``SLACK_API_URL`` points the Web API client elsewhere (a proxy, a test).

Every listener acknowledges at once and does its work in a lazy listener, after the
acknowledgement: Slack wants an answer within 3 seconds, and the same split lets the
handlers run on AWS Lambda later, where work after the answer needs a second invocation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.lazy_listener.async_internals import to_runnable_function
from slack_bolt.lazy_listener.async_runner import AsyncLazyListenerRunner
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from jobdeck.commands import UserGroups
from jobdeck.slack.approvals import ApprovalHandlers
from jobdeck.slack.handlers import Handlers
from jobdeck.slack.settings import SlackSettings

if TYPE_CHECKING:
    from jobdeck.app import Application, Loop

log = logging.getLogger("jobdeck.slack")

EVENTS_PATH = "/slack/events"


class SharedTLSContext(ssl.SSLContext):
    """A client TLS context (TLS 1.2 or newer, verified) that copies as itself: Bolt
    deep-copies each request, with its Web API client, for the lazy listeners, and an
    SSLContext cannot be copied."""

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedTLSContext:
        return self

    @classmethod
    def create(cls) -> SharedTLSContext:
        import certifi

        context = cls(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(certifi.where())
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
        return context


class TrackedLazyRunner(AsyncLazyListenerRunner):
    """Bolt's asyncio runner keeps no reference to the tasks it starts, so the garbage
    collector may drop one mid-flight; this one keeps them, named, until they end."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, function: Callable[..., Awaitable[None]], request: AsyncBoltRequest) -> None:
        work = to_runnable_function(internal_func=function, logger=self.logger, request=request)
        name = f"slack:{getattr(function, '__name__', 'lazy')}"
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class SlackBot:
    def __init__(self, app: Application, settings: SlackSettings) -> None:
        self.app = app
        self.settings = settings
        self.client = AsyncWebClient(
            token=settings.bot_token,
            base_url=settings.api_url,
            ssl=SharedTLSContext.create(),
            logger=log,
        )
        self.bolt = AsyncApp(
            name="jobdeck",
            client=self.client,
            signing_secret=settings.signing_secret or "",
            request_verification_enabled=settings.signing_secret is not None,
            process_before_response=False,
            logger=log,
        )
        self.lazy = TrackedLazyRunner(log)
        self.bolt.listener_runner.lazy_listener_runner = self.lazy
        self.usergroups = UserGroups(self._usergroup_members, app.clock)
        self.invoker = app.invoker(self.usergroups)
        self.handlers = Handlers(self.invoker, app, tail=self._tail)
        self.handlers.register(self.bolt)
        approver = app.approver(self.usergroups)
        ApprovalHandlers(approver, self.handlers.first_delivery).register(self.bolt)
        self._http = AsyncSlackRequestHandler(self.bolt)
        secret = settings.signing_secret
        self._verifier = SignatureVerifier(secret) if secret else None

    @property
    def http_mode(self) -> bool:
        return self.settings.signing_secret is not None

    @property
    def socket_mode(self) -> bool:
        return self.settings.app_token is not None

    def routes(self) -> list[BaseRoute]:
        """``POST /slack/events`` in HTTP mode; nothing otherwise (so nothing unverified
        is ever accepted)."""
        if not self.http_mode:
            return []
        return [Route(EVENTS_PATH, self._events, methods=["POST"])]

    def loops(self) -> dict[str, Loop]:
        """The server's named loops for this bot: the Socket Mode connection."""
        return {"slack-socket-mode": self.run_socket_mode} if self.socket_mode else {}

    async def _events(self, request: Request) -> Response:
        # Bolt reads the body before it checks the signature, and takes any JSON it
        # finds for an object: the signature is checked first, and a body that is not
        # the shape Slack sends is the sender's mistake (400), never a 500.
        try:
            body = (await request.body()).decode("utf-8")
        except UnicodeDecodeError:
            return _refusal(400, "bad_request", "the body is not UTF-8 text")
        if self._verifier is None or not self._verifier.is_valid(
            body,
            request.headers.get("x-slack-request-timestamp"),
            request.headers.get("x-slack-signature"),
        ):
            return _refusal(401, "unauthorized", "the request is not signed by Slack")
        if not slack_shaped(body, request.headers.get("content-type", "")):
            return _refusal(400, "bad_request", "the body is not one Slack sends")
        try:
            return await self._http.handle(request)
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
            log.info("refused a Slack request whose body cannot be read: %r", exc)
            return _refusal(400, "bad_request", "the body is not one Slack sends")

    async def run_socket_mode(self) -> None:
        """Hold the Socket Mode connection until cancelled (the client reconnects)."""
        assert self.settings.app_token is not None
        handler = AsyncSocketModeHandler(self.bolt, self.settings.app_token, web_client=self.client)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("Slack Socket Mode connected")
        try:
            await asyncio.Event().wait()
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]
            await self.lazy.drain()

    async def aclose(self) -> None:
        await self.lazy.drain()

    async def _usergroup_members(self, group: str) -> Collection[str]:
        answer = await self.client.usergroups_users_list(usergroup=group)
        users = answer.get("users") or []
        return [str(user) for user in users]

    def _tail(self, run_id: int) -> str:
        return self.app.executor.log_tail(run_id, lines=15, max_bytes=2500)


def slack_shaped(body: str, content_type: str) -> bool:
    """Whether ``body`` is what Slack posts: a JSON object (events), or a form whose
    ``payload``, if any, is a JSON object (interactions)."""
    try:
        if content_type.partition(";")[0].strip().lower() == "application/json":
            return isinstance(json.loads(body), dict)
        form = parse_qs(body, keep_blank_values=True)
        payloads = form.get("payload", [])
        return len(payloads) <= 1 and all(isinstance(json.loads(p), dict) for p in payloads)
    except (ValueError, RecursionError):
        return False


def _refusal(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
