"""Generated hostile requests against the real HTTP API and Slack's ``/slack/events``.

One real server (engine, API, dashboard, Slack bot in HTTP mode with Slack's Web API
played by a local fake) runs in a thread of its own; hypothesis draws requests, each
example sending a handful. Every answer must be below 500 and, when it refuses (4xx),
the store must not have changed but for the audit entry of a refused command; at the
end the server must still answer its health check.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobdeck.app import Application
from tests.integration.test_slack_harness import Bot, bot_server, signature

REQUESTS_PER_EXAMPLE = 10
EXAMPLES = 320  # two tests: 2 x 320 x 10 = 6,400 requests
DEADLINE = 60.0


@dataclass
class Hosted:
    url: str
    app: Application
    seen: dict[int, int]


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    """The server in a thread of its own, for the synchronous hypothesis tests."""
    folder = tmp_path_factory.mktemp("fuzz")
    ready: Future[Bot] = Future()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def host() -> None:
        try:
            async with bot_server(folder) as bot:
                ready.set_result(bot)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    done: Future[None] = Future()

    def run() -> None:
        try:
            loop.run_until_complete(host())
            done.set_result(None)
        except BaseException as exc:
            done.set_exception(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="fuzzed-server", daemon=True)
    thread.start()
    bot = ready.result(DEADLINE)
    try:
        yield Hosted(bot.served.url, bot.served.app, {})
    finally:
        loop.call_soon_threadsafe(stop.set)
        done.result(DEADLINE)
        thread.join(DEADLINE)


# -- what is drawn ---------------------------------------------------------------------


def segment(text: str) -> str:
    return quote(text, safe="")


NAMES = st.one_of(
    st.sampled_from(["say", "push", "secret", "nope", "", "..", "%00", "a" * 300]),
    st.text(max_size=20),
).map(segment)
IDS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["1", "0", "9223372036854775808", "1e9", "-1", "NaN", "0x10"]),
    st.text(max_size=12),
).map(segment)
PATHS = st.one_of(
    st.builds(lambda i: f"/api/v1/runs/{i}", IDS),
    st.builds(lambda i: f"/api/v1/runs/{i}/log", IDS),
    st.builds(lambda i: f"/runs/{i}", IDS),
    st.builds(lambda i: f"/runs/{i}/log", IDS),
    st.builds(lambda i: f"/api/v1/revisions/{i}", IDS),
    st.builds(lambda n: f"/api/v1/commands/{n}/invocations", NAMES),
    st.builds(lambda n: f"/api/v1/schedules/{n}/runs", NAMES),
    st.builds(
        lambda k, n, a: f"/api/v1/{k}/{n}/{a}",
        st.sampled_from(["schedules", "workers", "commands", "queues", "x"]),
        NAMES,
        st.sampled_from(["suspend", "resume", "runs", "nope"]),
    ),
    st.builds(lambda n, a: f"/schedules/{n}/{a}", NAMES, st.sampled_from(["run", "suspend"])),
    st.sampled_from(
        [
            "/api/v1/runs",
            "/api/v1/audit",
            "/api/v1/schedules",
            "/api/v1/commands",
            "/api/v1/queues",
            "/audit",
            "/",
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/login",
            "/logout",
            "/nowhere",
            "/assets/../../etc/passwd",
        ]
    ),
    st.text(max_size=40).map(lambda t: "/" + quote(t)),
)
QUERY_KEYS = st.sampled_from(
    ["limit", "offset", "page", "status", "job", "kind", "since", "until", "next", "started"]
)
QUERIES = st.dictionaries(
    QUERY_KEYS,
    st.one_of(IDS, st.text(max_size=30), st.sampled_from(["99999999999999999999", "-5"])),
    max_size=3,
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
PARAM_VALUES = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["a\x00b", "\x1b[2J", "x" * 5000, "https://x.example/\x00", "\u202e"]),
    JSON,
)
INVOCATION = st.fixed_dictionaries(
    {},
    optional={
        "params": st.one_of(
            st.dictionaries(st.sampled_from(["title", "url", "note", "x"]), PARAM_VALUES),
            JSON,
        ),
        "via": JSON,
        "reason": st.one_of(st.text(max_size=40), JSON),
        "until": st.one_of(st.text(max_size=30), JSON),
        "ignore_overlap": JSON,
    },
)
BODIES = st.one_of(
    st.none(),
    INVOCATION.map(lambda b: json.dumps(b).encode()),
    JSON.map(lambda b: json.dumps(b).encode()),
    st.binary(max_size=200),
    st.integers(min_value=1, max_value=200_000).map(lambda n: b"[" * n),
    st.integers(min_value=1, max_value=50_000).map(lambda n: b'{"a":' * n),
    st.sampled_from([b"{nope", b"\xff\xfe", b"null", b"[]", b'"x"', b"1e400"]),
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/vnd.api+json",
        "garbage",
    ]
)
ORIGINS = st.sampled_from([None, None, "null", "http://evil.example", "OWN", "garbage"])
HOSTS = st.sampled_from(["OWN", "OWN", "localhost", "evil.example", "[::1", "a:b:c", "127.0.0.1"])


@dataclass
class Drawn:
    method: str
    path: str
    query: dict[str, str]
    body: bytes | None
    content_type: str | None
    origin: str | None
    host: str


REQUESTS = st.builds(
    Drawn,
    method=st.sampled_from(["GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
    path=PATHS,
    query=QUERIES,
    body=BODIES,
    content_type=CONTENT_TYPES,
    origin=ORIGINS,
    host=HOSTS,
)


# -- what must hold ----------------------------------------------------------------------


def snapshot(app: Application) -> tuple[int, int, tuple[Any, ...]]:
    store = app.store
    runs = len(store.runs.runs(limit=100_000))
    audit = store.audit.audit(limit=100_000)
    refused = sum(1 for e in audit if e.outcome == "refused")
    every = store.suspensions.suspensions(app.clock.now(), include_ended=True)
    held = tuple(sorted((s.id, s.kind, s.name, s.until) for s in every))
    return runs, len(audit) - refused, held


def check(hosted: Hosted, client: httpx.Client, request: httpx.Request) -> None:
    before = snapshot(hosted.app)
    try:
        response = client.send(request)
    except httpx.RemoteProtocolError:
        # The server may close a connection whose body it refused unread (413).
        return
    hosted.seen[response.status_code] = hosted.seen.get(response.status_code, 0) + 1
    assert response.status_code < 500, (request.method, request.url, response.text[:300])
    if response.status_code >= 400:
        assert snapshot(hosted.app) == before, (request.method, request.url, response.text)
        if request.method != "HEAD" and response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            assert "error" in response.json()


def build(client: httpx.Client, base: str, drawn: Drawn) -> httpx.Request:
    own = base.removeprefix("http://")
    headers: dict[str, str] = {"host": own if drawn.host == "OWN" else drawn.host}
    if drawn.content_type is not None:
        headers["content-type"] = drawn.content_type
    if drawn.origin is not None:
        headers["origin"] = base if drawn.origin == "OWN" else drawn.origin
    url = drawn.path + (f"?{urlencode(drawn.query)}" if drawn.query else "")
    return client.build_request(drawn.method, base + url, content=drawn.body, headers=headers)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(REQUESTS, min_size=REQUESTS_PER_EXAMPLE, max_size=REQUESTS_PER_EXAMPLE))
def test_the_api_answers_every_hostile_request_without_a_500(
    hosted: Hosted, drawn: list[Drawn]
) -> None:
    with httpx.Client(timeout=30) as client:
        for one in drawn:
            check(hosted, client, build(client, hosted.url, one))


SLACK_FIELDS = st.dictionaries(
    st.sampled_from(
        [
            "command",
            "text",
            "user_id",
            "channel_id",
            "trigger_id",
            "response_url",
            "team_id",
            "payload",
            "type",
            "ssl_check",
        ]
    ),
    st.one_of(
        st.sampled_from(["/jobdeck", "/say", "help", "run say title=x", "U_BOSS", "C_OPS"]),
        st.text(max_size=40),
        JSON.map(json.dumps),
    ),
    max_size=6,
)


@dataclass
class SlackDrawn:
    fields: dict[str, str]
    raw: bytes | None
    signed: str  # "good", "bad", "none", "stale"
    content_type: str | None


SLACK_REQUESTS = st.builds(
    SlackDrawn,
    fields=SLACK_FIELDS,
    raw=st.one_of(st.none(), st.none(), BODIES),
    signed=st.sampled_from(["good", "good", "bad", "none", "stale"]),
    content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "application/json", None, "text/plain"]
    ),
)


def slack_request(client: httpx.Client, base: str, drawn: SlackDrawn) -> httpx.Request:
    body = drawn.raw if drawn.raw is not None else urlencode(drawn.fields).encode()
    headers: dict[str, str] = {}
    if drawn.content_type is not None:
        headers["content-type"] = drawn.content_type
    now = int(time.time())
    text = body.decode("utf-8", "replace")
    if drawn.signed in ("good", "stale"):
        at = now if drawn.signed == "good" else now - 3600
        headers["x-slack-request-timestamp"] = str(at)
        headers["x-slack-signature"] = signature(text, at)
    elif drawn.signed == "bad":
        headers["x-slack-request-timestamp"] = str(now)
        headers["x-slack-signature"] = "v0=" + "0" * 64
    return client.build_request("POST", base + "/slack/events", content=body, headers=headers)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(SLACK_REQUESTS, min_size=REQUESTS_PER_EXAMPLE, max_size=REQUESTS_PER_EXAMPLE))
def test_slack_events_answer_every_hostile_request_without_a_500(
    hosted: Hosted, drawn: list[SlackDrawn]
) -> None:
    with httpx.Client(timeout=30) as client:
        for one in drawn:
            check(hosted, client, slack_request(client, hosted.url, one))


def test_the_server_is_still_healthy(hosted: Hosted) -> None:
    answer = httpx.get(hosted.url + "/healthz", timeout=30)
    assert answer.status_code == 200
    if hosted.seen:  # after the two suites above (not when picked alone)
        assert sum(hosted.seen.values()) >= 2 * EXAMPLES * REQUESTS_PER_EXAMPLE
