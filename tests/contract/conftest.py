"""One fixture, every implementation of the store's Protocols: the same assertions run
against memory, SQLite and PostgreSQL (as apscheduler's data store tests do)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobdeck.store import DataStore, open_store
from jobdeck.store.memory import MemoryStore
from tests.conftest import PostgresServer

IMPLEMENTATIONS = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=IMPLEMENTATIONS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataStore]:
    """An empty store of each implementation."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        with open_store(state_dir=tmp_path / "state") as opened:
            yield opened
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("postgres_template")
    name = server.create_database(template=template)
    try:
        with open_store(server.url_of(name)) as opened:
            yield opened
    finally:
        server.drop_database(name)
