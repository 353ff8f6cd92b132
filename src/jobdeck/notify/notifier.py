"""Sends run notices to Slack channels and webhooks, in the background, with retries.

The engine calls :meth:`Notifier.notify` on its own event loop when a run ends badly.
That call must never fail or stall the engine: a Slack outage is no reason to delay the
next run. So each target becomes a task owned by the notifier, bounded by a deadline,
and everything that goes wrong ends in the log, not in the caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType

import httpx

from jobdeck.clock import Clock, SystemClock
from jobdeck.notify.notice import RunNotice, webhook_payload
from jobdeck.notify.outcome import Attempt, final, http_attempt, parse_retry_after, retry
from jobdeck.notify.settings import NotifySettings, Target, client_ssl_context, parse_target
from jobdeck.notify.signature import sign
from jobdeck.notify.slack import chat_message, slack_attempt

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Done = Callable[[bool], None]
JSON_TYPE = "application/json; charset=utf-8"


class Notifier:
    """Delivers notices to ``slack:#channel`` and ``webhook:URL`` targets.

    Owns its HTTP client and its delivery tasks: close it with :meth:`aclose` (or use it
    as an async context manager), which gives pending deliveries a last chance.
    ``sleep`` waits between retries and ``clock`` dates signatures and reads
    Retry-After dates; both are parameters so that tests control time.
    """

    def __init__(
        self,
        settings: NotifySettings,
        *,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self._clock: Clock = clock or SystemClock()
        self._sleep = sleep
        self.ssl_context = ssl_context or client_ssl_context(settings.ca_file)
        if self.ssl_context.minimum_version < ssl.TLSVersion.TLSv1_2:
            raise ValueError("notifications need a TLS context that refuses TLS before 1.2")
        self._client = httpx.AsyncClient(
            verify=self.ssl_context,
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            # A redirect could bounce an alert (and its secrets) to plain http elsewhere.
            follow_redirects=False,
            headers={"User-Agent": settings.user_agent},
            # Configuration comes from settings only, never from the process environment.
            trust_env=False,
        )
        self._tasks: set[asyncio.Task[bool]] = set()
        self._reports: set[asyncio.Task[None]] = set()
        self._closed = False
        self._warned_no_token = False

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> Notifier:
        return cls(NotifySettings.from_env(environ), clock=clock, sleep=sleep)

    @property
    def in_flight(self) -> int:
        """Deliveries started and not yet finished (delivered, failed or abandoned)."""
        return len(self._tasks)

    def notify(
        self,
        targets: Sequence[str],
        event: RunNotice,
        *,
        notice_id: int | None = None,
        done: Done | None = None,
    ) -> None:
        """Start delivering ``event`` to each target and return at once. Never raises:
        problems are logged. Must be called from the event loop the notifier runs on.

        ``notice_id`` (the recorded notice's) names every webhook delivery of it, also
        those of a later engine: header ``X-Jobdeck-Notice-Id`` and ``delivery_id``
        ``notice-ID``. ``done`` is called once, in the loop, with whether every target
        accepted it (a target skipped for good counts as accepted)."""
        try:
            tasks = self._schedule(
                [targets] if isinstance(targets, str) else targets, event, notice_id
            )
        except Exception:
            log.exception("could not send notifications for run %s", event.run_id)
            tasks = None
        if done is None:
            return
        if tasks is None:
            done(False)
            return
        self._report(tasks, done)

    def _report(self, tasks: list[asyncio.Task[bool]], done: Done) -> None:
        async def report() -> None:
            results = await asyncio.gather(*tasks, return_exceptions=True)
            try:
                done(all(result is True for result in results))
            except Exception:
                log.exception("recording how a notice went failed")

        task = asyncio.get_running_loop().create_task(report())
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def aclose(self, grace: float = 10.0) -> None:
        """Stop accepting notices, wait up to ``grace`` seconds for those in flight,
        abandon the rest (logged), and close the HTTP client."""
        if self._closed:
            return
        self._closed = True
        pending = set(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            if late:
                log.error(
                    "abandoning %d notification(s) still undelivered after %.1fs at shutdown",
                    len(late),
                    grace,
                )
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        if self._reports:
            await asyncio.wait(set(self._reports), timeout=1.0)
        await self._client.aclose()

    async def __aenter__(self) -> Notifier:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _schedule(
        self, targets: Sequence[str], notice: RunNotice, notice_id: int | None
    ) -> list[asyncio.Task[bool]] | None:
        """The delivery tasks started; None when some target could not be tried now."""
        if self._closed:
            log.error("notifier is closed; dropping notice of %s", notice.summary)
            return None
        started: list[asyncio.Task[bool]] | None = []
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + self.settings.deadline
        occurred_at = self._clock.now()
        for text in dict.fromkeys(targets):  # the same target twice is one message
            try:
                target = parse_target(text)
            except ValueError as exc:
                log.error("skipping notify target of %s: %s", notice.summary, exc)
                continue
            if target.kind == "slack" and not self.settings.slack_token:
                if not self._warned_no_token:
                    self._warned_no_token = True
                    log.warning("SLACK_BOT_TOKEN is not set: Slack notify targets are skipped")
                continue
            if len(self._tasks) >= self.settings.max_in_flight:
                log.error(
                    "%d notifications already in flight; dropping %s for %s",
                    len(self._tasks),
                    target.display,
                    notice.summary,
                )
                started = None
                continue
            task = loop.create_task(
                self._deliver(target, notice, deadline_at, occurred_at, notice_id),
                name=f"notify {target.display} run {notice.run_id}",
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if started is not None:
                started.append(task)
        return started

    async def _deliver(
        self,
        target: Target,
        notice: RunNotice,
        deadline_at: float,
        occurred_at: datetime,
        notice_id: int | None = None,
    ) -> bool:
        """Whether ``target`` accepted ``notice``."""
        label = f"{target.display} ({notice.summary}, run {notice.run_id})"
        send: Callable[[], Awaitable[Attempt]]
        if target.kind == "slack":
            body = chat_message(target.address, notice)

            async def send() -> Attempt:
                return await self._post_slack(body)

        else:
            # One id for every retry, so a receiver can drop a duplicate after a retry
            # whose first try did arrive but whose answer was lost; a recorded notice's
            # id is the same in every engine that sends it.
            delivery_id = uuid.uuid4().hex if notice_id is None else f"notice-{notice_id}"
            payload = webhook_payload(notice, delivery_id=delivery_id, occurred_at=occurred_at)
            data = json.dumps(payload, separators=(",", ":")).encode()

            async def send() -> Attempt:
                return await self._post_webhook(target.address, data, notice.event_type, notice_id)

        try:
            async with asyncio.timeout_at(deadline_at):
                return await self._with_retries(send, label, deadline_at)
        except TimeoutError:
            log.error(
                "notification to %s gave up: no success within the %.0fs deadline",
                label,
                self.settings.deadline,
            )
        except Exception:
            log.exception("notification to %s failed unexpectedly", label)
        return False

    async def _with_retries(
        self, send: Callable[[], Awaitable[Attempt]], label: str, deadline_at: float
    ) -> bool:
        policy = self.settings.retry
        loop = asyncio.get_running_loop()
        for number in range(1, policy.attempts + 1):
            attempt = await send()
            if attempt.delivered:
                log.info("notification to %s delivered (attempt %d)", label, number)
                return True
            if not attempt.retryable:
                log.error("notification to %s failed: %s (not retried)", label, attempt.detail)
                return False
            if number == policy.attempts:
                break
            delay = policy.delay(number, attempt.retry_after)
            if loop.time() + delay >= deadline_at:
                # Sleeping into the deadline would only end in the same failure, later.
                log.error(
                    "notification to %s gave up: %s; the next try in %.1fs would pass the deadline",
                    label,
                    attempt.detail,
                    delay,
                )
                return False
            log.warning(
                "notification to %s failed: %s; retry %d of %d in %.1fs",
                label,
                attempt.detail,
                number,
                policy.attempts - 1,
                delay,
            )
            await self._sleep(delay)
        log.error(
            "notification to %s gave up after %d attempts: %s",
            label,
            policy.attempts,
            attempt.detail,
        )
        return False

    async def _post_slack(self, body: dict[str, object]) -> Attempt:
        url = f"{self.settings.slack_api_url}/chat.postMessage"
        headers = {
            "Authorization": f"Bearer {self.settings.slack_token}",
            "Content-Type": JSON_TYPE,
        }
        try:
            response = await self._client.post(url, content=json.dumps(body), headers=headers)
        except httpx.TransportError as exc:
            return transport_attempt(exc)
        try:
            answer: object = response.json()
        except ValueError:
            answer = None
        after = parse_retry_after(response.headers.get("Retry-After"), self._clock.now())
        return slack_attempt(response.status_code, answer, after)

    async def _post_webhook(
        self, url: str, data: bytes, event_type: str, notice_id: int | None = None
    ) -> Attempt:
        headers = {"Content-Type": JSON_TYPE, "X-Jobdeck-Event": event_type}
        if notice_id is not None:
            headers["X-Jobdeck-Notice-Id"] = str(notice_id)
        if self.settings.webhook_secret:
            headers.update(sign(self.settings.webhook_secret, data, self._clock.now()))
        try:
            response = await self._client.post(url, content=data, headers=headers)
        except httpx.TransportError as exc:
            return transport_attempt(exc)
        after = parse_retry_after(response.headers.get("Retry-After"), self._clock.now())
        return http_attempt(response.status_code, after)


def transport_attempt(exc: httpx.TransportError) -> Attempt:
    """Connection refused, reset or timed out is worth another try; a failed TLS
    handshake (old protocol, untrusted certificate) will fail the same way again."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return final(f"TLS handshake failed: {cause}")
        cause = cause.__cause__ or cause.__context__
    return retry(f"{type(exc).__name__}: {exc or 'no detail'}")
