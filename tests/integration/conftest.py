"""Fixtures of the integration tests: a running SQS-compatible endpoint per backend, the
asyncio backend for anyio, and the execute and workflow harnesses with their clean-up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, PostgresServer
from tests.integration.sqs_harness import SqsServer
from tests.integration.test_execute_harness import Harness
from tests.integration.test_workflow_harness import Decks


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the engine (driver, executor, notifier, servers) is built on asyncio


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """Runs through the real shim in the test's own folder; fails if anything is left."""
    h = Harness(tmp_path)
    yield h
    h.cleanup()


@pytest.fixture
def decks(tmp_path: Path) -> Iterator[Decks]:
    """Engines over one SQLite store in the test's own folder; nothing left running after."""
    made = Decks(tmp_path)
    yield made
    made.cleanup()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str | None:
    """An engine's store on each backend: None (SQLite in its state folder) or the URL
    of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


def _store_url(request: pytest.FixtureRequest, folder: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{folder / 'jobdeck.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("postgres_template")
    name = server.create_database(template=template)
    try:
        yield server.url_of(name)
    finally:
        server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def sqs_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store's URL on each backend, for a server of the test's own."""
    yield from _store_url(request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def sqs_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqsServer]:
    """One endpoint per test module and backend; tests use queues of their own names."""
    for url in _store_url(request, tmp_path_factory.mktemp("sqs")):
        server = SqsServer(url)
        server.start()
        try:
            yield server
        finally:
            server.stop()
