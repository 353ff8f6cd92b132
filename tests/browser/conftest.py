"""A real engine and HTTP server in a background thread, and a real Chromium driving it.

The engine (an :class:`Application` with its loops) and uvicorn share one event loop in a
thread of their own, so the test's thread is free for Playwright's synchronous API. The
browser is Debian's Chromium (``apt-get install chromium``), never a downloaded one.

Environment:
    JOBDECK_CHROMIUM             the browser to drive (default /usr/bin/chromium)
    JOBDECK_SCREENSHOT_DIR       where the screenshot test saves its pictures
                                 (default: the test's temporary folder; docs/img for the docs)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright, sync_playwright

from jobdeck.api import create_api
from jobdeck.app import Application, Options
from jobdeck.catalog.load import load_catalog_text
from jobdeck.control import Control
from jobdeck.queues.catalog import sync_catalog_queues

CHROMIUM = os.environ.get("JOBDECK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# The scheduler runs as in production, so a timed fire may land during a test: the
# schedules the tests run allow overlap, and the tests only count the runs they started.
CATALOG = """\
version: 1
project: newsroom
timezone: Asia/Tokyo

pools:
  batch: {memory: 1GiB, max_concurrency: 4, priority: low}

queues:
  feed-index: {visibility_timeout: 60s, max_receive_count: 5}

schedules:
  hello:
    description: Say hello
    cron: "17 4 * * *"
    command: ["python3", "-c", "print('hi')"]
    pool: batch
    overlap: allow
  ranking-aggregate:
    description: Aggregate page views into the ranking
    cron: "*/10 * * * *"
    timezone: Europe/Paris
    overlap: allow
    shell: "for i in 1 2 3 4 5 6; do echo step $i; sleep 0.4; done"
    pool: batch
  sitemap-rebuild:
    description: Rebuild the sitemap every night
    cron: "30 3 * * *"
    shell: "echo rebuilding sitemap && echo done"
  nightly-export:
    description: Export the day's articles (skips a fire while the last one runs)
    cron: "0 2 * * *"
    shell: "sleep 2; echo exported"
    overlap: skip
  stale-cache-sweep:
    description: A batch that fails now and then
    rate: 6h
    command: ["python3", "-c", "import sys; print('cache is stale', file=sys.stderr); sys.exit(3)"]
    retry: {failure: 1, backoff: 1s}

workers:
  feed-indexer:
    description: Index articles from the feed queue
    command: ["python3", "-c", "import time; time.sleep(3600)"]
    queue: feed-index
    replicas: 2
    pool: batch
"""

T = TypeVar("T")


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Engine:
    """An applied catalog, a started :class:`Application` with its loops, and uvicorn
    serving its HTTP side (the API and the dashboard, behind the login form when given a
    token) on a free 127.0.0.1 port, all in one background event loop."""

    def __init__(self, state_dir: Path, catalog_text: str | None, token: str | None = None) -> None:
        self.state_dir = state_dir
        self.catalog_text = catalog_text
        self.token = token
        self.sock = free_socket()
        host, port = self.sock.getsockname()
        self.url = f"http://{host}:{port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="engine", daemon=True)
        self.ready: Future[Application] = Future()
        self._done: asyncio.Event | None = None
        self.failure: BaseException | None = None

    def start(self) -> Engine:
        self.thread.start()
        self.app = self.ready.result(timeout=60)
        return self

    def call(self, work: Callable[[], T]) -> T:
        """Run ``work`` in the engine's loop (the run driver lives there) and return it."""

        async def inside() -> T:
            return work()

        return self.run(inside())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def stop(self) -> None:
        if self._done is not None:
            self.loop.call_soon_threadsafe(self._done.set)
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the engine thread did not stop"
        if self.failure is not None:
            raise self.failure

    def _serve(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:
            self.failure = exc
            if not self.ready.done():
                self.ready.set_exception(exc)
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._done = asyncio.Event()
        app = Application(Options(state_dir=self.state_dir, environ={"PATH": os.environ["PATH"]}))
        if self.catalog_text is not None:
            source = self.state_dir / "jobdeck.yaml"
            source.write_text(self.catalog_text)
            loaded = load_catalog_text(self.catalog_text, str(source))
            control = Control(app.store, app.clock, "alice@laptop", "cli")
            control.apply(loaded, git=None, steps=(sync_catalog_queues,))
        await app.start()
        engine = asyncio.create_task(app.run(), name="engine")
        config = uvicorn.Config(
            create_api(app, token=self.token), log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[self.sock]), name="http")
        while not server.started:
            if serving.done():
                await serving
            await asyncio.sleep(0.01)
        self.ready.set_result(app)
        try:
            await self._done.wait()
        finally:
            server.should_exit = True
            await serving
            app.stop()
            try:
                await engine
            finally:
                try:
                    await self._end_runs(app)
                finally:
                    app.executor.stop_launchers()
                    await app.aclose()
                    app.executor.pools.teardown()
                    self.sock.close()

    @staticmethod
    async def _end_runs(app: Application) -> None:
        """Let the short runs the tests started finish, and stop worker processes (they
        never end on their own, and outlive an engine by design): nothing outlives the
        test."""
        stopping: set[int] = set()
        for _ in range(600):
            alive = [
                r for r in app.store.runs.active_runs() if app.executor.probe(r.id) == "running"
            ]
            if not alive:
                return
            for run in alive:
                if run.kind == "worker" and run.id not in stopping:
                    stopping.add(run.id)
                    await app.executor.cancel(run.id, 2.0)
            await asyncio.sleep(0.05)
        raise AssertionError(f"runs still running: {alive}")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    started = Engine(tmp_path_factory.mktemp("state"), CATALOG).start()
    yield started
    started.stop()


TOKEN = "browser-test-token"


@pytest.fixture(scope="module")
def guarded_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The same, behind access control: the dashboard needs the token's login first."""
    started = Engine(tmp_path_factory.mktemp("state"), CATALOG, token=TOKEN).start()
    yield started
    started.stop()


# Module-scoped, not session-scoped: Playwright's synchronous API keeps an event loop of
# its own, which must be gone before other tests run theirs.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "or point JOBDECK_CHROMIUM at one",
            pytrace=False,
        )
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield launched
    launched.close()


class Problems:
    """Every script error and console error a page had; a test ends with none."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def page_error(self, error: Error) -> None:
        self.found.append(f"page error: {error.message}")

    def console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        self.found.append(f"console error: {message.text} at {message.location}")


@contextlib.contextmanager
def open_page(browser: Browser, url: str) -> Iterator[Page]:
    """A fresh browser context (no cookies) on ``url``; fails if the page had errors."""
    context = browser.new_context(
        base_url=url, viewport={"width": 1366, "height": 860}, timezone_id="UTC"
    )
    context.set_default_timeout(15_000)
    opened = context.new_page()
    problems = Problems()
    opened.on("pageerror", problems.page_error)
    opened.on("console", problems.console)
    yield opened
    context.close()
    assert problems.found == [], "\n".join(problems.found)


@pytest.fixture
def page(browser: Browser, engine: Engine) -> Iterator[Page]:
    with open_page(browser, engine.url) as opened:
        yield opened


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    chosen = os.environ.get("JOBDECK_SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder
