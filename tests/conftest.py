"""Fixtures that give tests a real store on every backend: SQLite and PostgreSQL.

PostgreSQL isolation is cheap and real: one database is migrated once per session and
used as the template of a fresh database for each test, dropped afterwards.

Environment:
    JOBDECK_TEST_PG_URL   the server to use (default postgresql://postgres@127.0.0.1:5432/test);
                          its database is only used to create and drop others.
    JOBDECK_TEST_SKIP_PG  "1" skips the PostgreSQL tests when the server is unreachable
                          (without it they fail, so a missing server is never mistaken
                          for a pass).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from jobdeck.store import DataStore, Store, open_store
from jobdeck.store.engine import display_url
from jobdeck.store.memory import MemoryStore

PG_URL_ENV = "JOBDECK_TEST_PG_URL"
SKIP_PG_ENV = "JOBDECK_TEST_SKIP_PG"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


class PostgresServer:
    """Creates and drops throw-away databases on the test server."""

    def __init__(self, url: URL, admin: Engine) -> None:
        self.url = url
        self.admin = admin

    def create_database(self, template: str | None = None) -> str:
        name = f"jobdeck_test_{uuid.uuid4().hex[:16]}"
        clause = f" TEMPLATE {template}" if template else ""
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}{clause}")
        return name

    def drop_database(self, name: str) -> None:
        with self.admin.connect() as connection:
            # FORCE: a test that failed half-way must not leave the database behind.
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def url_of(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    url = make_url(os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)).set(drivername="postgresql+psycopg")
    admin = create_engine(
        url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"connect_timeout": 5}
    )
    problem: OperationalError | None = None
    try:
        with admin.connect():
            pass
    except OperationalError as error:
        problem = error
    if problem is not None:
        # Reported outside the except block so the message is not buried in a chain.
        admin.dispose()
        shown = display_url(url)
        if os.environ.get(SKIP_PG_ENV) == "1":
            pytest.skip(f"PostgreSQL at {shown} is unreachable and {SKIP_PG_ENV}=1")
        pytest.fail(
            f"PostgreSQL at {shown} is unreachable: {problem.orig}\n"
            f"Start it, point {PG_URL_ENV} at a server, "
            f"or set {SKIP_PG_ENV}=1 to skip the PostgreSQL tests.",
            pytrace=False,
        )
    yield PostgresServer(url, admin)
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> Iterator[str]:
    """The name of a database migrated to head, to copy for each test."""
    name = postgres_server.create_database()
    # Closed before use: PostgreSQL copies a template only while nobody is connected.
    open_store(postgres_server.url_of(name)).close()
    yield name
    postgres_server.drop_database(name)


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = postgres_server.create_database()
    yield postgres_server.url_of(name)
    postgres_server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An open, migrated, empty store on each backend."""
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


STORE_IMPLEMENTATIONS = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORE_IMPLEMENTATIONS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataStore]:
    """An empty store of each implementation of the store's Protocols: in memory,
    SQLite and PostgreSQL (the contract tests, and the cores' tests that need no more)."""
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that asks for pg_url needs the server as much as the store's postgres
    # variant does; mark it so that `-m "not postgres"` deselects it too.
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
