"""Fixtures of the integration tests: a running SQS-compatible endpoint per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, PostgresServer
from tests.integration.sqs_harness import SqsServer


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
