"""The SQS-compatible HTTP endpoint: an ASGI app (Starlette) and a uvicorn runner.

Both SQS wire protocols arrive at any path: the AWS JSON 1.0 protocol of current SDKs
(``X-Amz-Target: AmazonSQS.<Action>``) and the older query protocol (``Action=...``,
form-encoded, XML answers). Where store work runs is explained in
:class:`SqsEndpoint`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobdeck.clock import Clock
from jobdeck.queues import query_protocol
from jobdeck.queues.attributes import LOCAL_ACCOUNT_ID
from jobdeck.queues.core import now_ms
from jobdeck.queues.errors import SqsError
from jobdeck.queues.service import Params, QueueService, Result, wait_seconds
from jobdeck.queues.shapes import check_request
from jobdeck.queues.sigv4 import KeyRing, SignedRequest, verify
from jobdeck.queues.wire import read_body
from jobdeck.store import Store

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
TARGET_PREFIX = "AmazonSQS."

# How often a waiting receive looks at the store again even without a notification:
# a message sent by another process, or one whose delay or visibility timeout ran out.
LONG_POLL_RECHECK_S = 0.5
# How long a stopping server lets requests in progress finish.
SHUTDOWN_GRACE_S = 3
# How often messages past their queue's retention are deleted.
PRUNE_INTERVAL_S = 60.0

# Actions after which waiting receivers of the queue should look again.
_WAKING_ACTIONS = {
    "SendMessage",
    "SendMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
}


class Waiters:
    """In-process wake-ups for long polls, one event per queue, replaced on each notify
    so that a waiter that took the event before looking cannot miss a send."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def current(self, queue: str) -> asyncio.Event:
        event = self._events.get(queue)
        if event is None:
            event = self._events[queue] = asyncio.Event()
        return event

    def notify(self, queue: str) -> None:
        event = self._events.pop(queue, None)
        if event is not None:
            event.set()


class SqsEndpoint:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        base_url: str,
        *,
        require_signature: bool = True,
        credentials: KeyRing | None = None,
        recheck_s: float = LONG_POLL_RECHECK_S,
    ) -> None:
        self.service = QueueService(store, clock, base_url)
        self.store = store
        self.clock = clock
        self.require_signature = require_signature
        # Access key id -> secret, when signatures are verified (see jobdeck.queues.sigv4).
        self.credentials = credentials
        self.recheck_s = recheck_s
        self.waiters = Waiters()
        # Whoever runs the app says when it is stopping: waiting long polls then answer
        # (empty) at their next look instead of holding the shutdown.
        self.stopping: Callable[[], bool] = lambda: False
        # SQLite: store work runs on the event loop itself. A transaction takes well
        # under a millisecond and SQLite has one writer at a time anyway; handing each
        # one to a thread costs more (GIL hand-offs of up to the switch interval) than
        # it saves, and the requests of this process never wait on SQLite's sleeping
        # busy handler for each other. The price: while another process holds the
        # write lock (an apply, a redrive), the endpoint waits with it, as briefly.
        # PostgreSQL: a few threads, so that the network round trips overlap.
        self.inline = store.single_writer
        if self.inline:
            self.service.pin_connection()
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="jobdeck-sqs-store")

    async def call(self, action: str, params: Params, account: str | None = None) -> Result:
        """Runs ``action`` (long polling a receive) for ``account`` (the queues' own when
        None), raising :class:`SqsError`."""
        handler = self.service.actions.get(action)
        if handler is None:
            raise SqsError(
                "UnknownOperationException" if action else "InvalidAction",
                f"The action {action or '(none)'} is not valid for this endpoint.",
            )
        check_request(action, params)
        if account is not None and account != LOCAL_ACCOUNT_ID:
            await self.run(functools.partial(self.service.authorize, action, account), params)
        if action == "ReceiveMessage":
            return await self._receive(params)
        result = await self.run(handler, params)
        if action in _WAKING_ACTIONS:
            self.waiters.notify(self.service.queue_name(params))
        return result

    async def run(self, handler: Callable[[Params], Result], params: Params) -> Result:
        if self.inline:
            return handler(params)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, handler, params)

    async def _receive(self, params: Params) -> Result:
        name = self.service.queue_name(params)
        loop = asyncio.get_running_loop()
        if params.get("WaitTimeSeconds") is None:
            wait = int((await self.run(self.service.default_wait, params))["wait"])
        else:
            wait = wait_seconds(params)
        deadline = loop.time() + wait
        while True:
            # Taken before looking, so that a send during the look is not missed.
            woken = self.waiters.current(name)
            result = await self.run(self.service.receive, params)
            remaining = deadline - loop.time()
            if result or remaining <= 0 or self.stopping():
                return result
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=min(remaining, self.recheck_s))

    def prune(self) -> int:
        with self.service.transaction() as tx:
            return tx.queues.prune_expired(now_ms(self.clock))

    # -- HTTP ------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        target = request.headers.get("x-amz-target")
        if request.method not in ("GET", "POST"):
            refused = SqsError("MethodNotAllowed", f"{request.method} is not an SQS request.")
            if target is not None:
                return json_error(refused, request_id)
            return query_protocol.xml_error(refused, request_id)
        if target is not None:
            return await self._handle_json(request, target, request_id)
        return await query_protocol.handle(self, request, request_id)

    async def _handle_json(self, request: Request, target: str, request_id: str) -> Response:
        try:
            raw = await read_body(request)
            account = self.check_signature(request, raw)
            action = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
            try:
                params = json.loads(raw) if raw else {}
            except (ValueError, RecursionError):
                raise SqsError(
                    "SerializationException", "The request body is not valid JSON."
                ) from None
            if not isinstance(params, dict):
                raise SqsError("InvalidParameterValue", "The request body must be a JSON object.")
            result = await self.call(action, params, account)
        except SqsError as refused:
            return json_error(refused, request_id)
        except Exception:
            log.exception("SQS request %s failed", request_id)
            return json_error(SqsError("InternalFailure", "The request failed."), request_id)
        return Response(
            json.dumps(result, separators=(",", ":")),
            media_type=JSON_CONTENT_TYPE,
            headers={"x-amzn-RequestId": request_id},
        )

    def check_signature(self, request: Request, body: bytes) -> str | None:
        """With credentials, the SigV4 signature must be one of theirs over this very
        request. Without (on loopback, by default), any SigV4-signed request is accepted
        and unsigned ones are refused, as SQS refuses them."""
        if self.credentials is not None:
            host = request.headers.get("host", "")
            query = request.scope.get("query_string", b"").decode("latin-1")
            path = request.scope.get("raw_path", b"/").decode("latin-1") or "/"
            signed = SignedRequest(
                method=request.method,
                url=f"{request.url.scheme}://{host}{path}" + (f"?{query}" if query else ""),
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                ],
                body=body,
            )
            key_id = verify(signed, self.credentials, self.clock.now())
            return self.credentials.account_of(key_id)
        if not self.require_signature:
            return None
        authorization = request.headers.get("authorization", "")
        if (
            authorization.startswith("AWS4-HMAC-SHA256 ")
            or request.query_params.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256"
        ):
            return None
        raise SqsError(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token: sign it with SigV4 (any credentials).",
        )


def json_error(refused: SqsError, request_id: str) -> Response:
    body = {"__type": refused.json_type, "message": refused.message}
    return Response(
        json.dumps(body),
        status_code=refused.status,
        media_type=JSON_CONTENT_TYPE,
        headers={"x-amzn-query-error": refused.query_error_header, "x-amzn-RequestId": request_id},
    )


def create_sqs_app(
    store: Store,
    clock: Clock,
    *,
    base_url: str,
    require_signature: bool = True,
    credentials: KeyRing | None = None,
) -> Starlette:
    """The endpoint as an ASGI app; queue URLs are ``{base_url}/000000000000/{name}``.
    With ``credentials``, only requests signed with one of them are served."""
    endpoint = SqsEndpoint(
        store, clock, base_url, require_signature=require_signature, credentials=credentials
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        pruner = asyncio.create_task(_prune_loop(endpoint), name="jobdeck-sqs-prune")
        try:
            yield
        finally:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            endpoint.executor.shutdown(wait=True)
            endpoint.service.close()

    app = Starlette(
        # Every method reaches the handler, which refuses all but GET and POST in SQS's
        # error shape (rather than the framework's plain-text 405).
        routes=[
            Route(
                "/{path:path}",
                endpoint.handle,
                methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"],
            )
        ],
        lifespan=lifespan,
    )
    app.state.sqs = endpoint
    return app


async def _prune_loop(endpoint: SqsEndpoint) -> None:
    while True:
        try:
            await endpoint.run(lambda _params: {"pruned": endpoint.prune()}, {})
        except Exception:
            log.exception("pruning expired messages failed; trying again later")
        await asyncio.sleep(PRUNE_INTERVAL_S)


async def serve_sqs(
    store: Store,
    clock: Clock,
    host: str,
    port: int,
    started: asyncio.Event | None = None,
    *,
    base_url: str | None = None,
    credentials: KeyRing | None = None,
) -> None:
    """Serves the endpoint on ``host:port`` until cancelled (or uvicorn is told to exit)."""
    app = create_sqs_app(
        store, clock, base_url=base_url or f"http://{host}:{port}", credentials=credentials
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        # Waiting long polls answer within LONG_POLL_RECHECK_S of a shutdown; anything
        # still running after this is cut: a receive answered to nobody only hides its
        # messages for their visibility timeout, and SDKs retry a dropped connection.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    server = uvicorn.Server(config)
    endpoint_of(app).stopping = lambda: server.should_exit
    serving = asyncio.create_task(server.serve(), name="jobdeck-sqs-server")
    try:
        while not server.started:
            if serving.done():
                await serving  # raises what stopped it (a port in use, say)
                return
            await asyncio.sleep(0.01)
        if started is not None:
            started.set()
        # Shielded: a cancelled caller lets uvicorn shut down cleanly (below).
        await asyncio.shield(serving)
    finally:
        if not serving.done():
            server.should_exit = True
            await serving


def endpoint_of(app: Any) -> SqsEndpoint:
    found = app.state.sqs
    assert isinstance(found, SqsEndpoint)
    return found
