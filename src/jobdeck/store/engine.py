"""From a store URL or a state directory to a configured SQLAlchemy :class:`Engine`.

Two backends share one code path: SQLite (the embedded default, one file in the state
directory) and PostgreSQL through psycopg 3. SQLite is tuned so that several processes
(``jobdeck serve`` and a ``jobdeck apply`` beside it) can write to the same file safely.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_FILENAME = "jobdeck.db"

# How long a writer waits for another process's write lock before giving up. Long
# enough for any transaction the store runs; short enough that a wedged process is
# reported instead of hanging every other one.
SQLITE_BUSY_TIMEOUT_S = 10.0

# The execution option that marks a connection's transactions as read-only: on SQLite
# they begin DEFERRED so that readers never queue behind writers (WAL lets them read a
# snapshot); on PostgreSQL the server enforces it.
READ_ONLY = "jobdeck_read_only"

_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_POSTGRES_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}


def store_url(url: str | None, state_dir: str | Path) -> URL:
    """The SQLAlchemy URL of the store: ``url`` when given, else the state dir's file.

    ``postgresql://`` (and ``postgres://``) select the psycopg 3 driver. The state
    directory is created, with its parents, only when the SQLite default is used.
    """
    if url is None:
        directory = Path(state_dir).expanduser().resolve()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        database = directory / SQLITE_FILENAME
        private_file(database)
        return URL.create("sqlite+pysqlite", database=str(database))
    parsed = make_url(url)
    if parsed.drivername in _POSTGRES_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in _SQLITE_DRIVERS:
        if parsed.database in (None, "", ":memory:"):
            raise ValueError(
                "an in-memory SQLite store is not supported: each connection would see "
                "its own empty database; give a file, e.g. sqlite:///path/jobdeck.db"
            )
        database = Path(parsed.database).expanduser()
        database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        private_file(database)
        return parsed.set(drivername="sqlite+pysqlite")
    raise ValueError(
        f"unsupported store URL scheme {parsed.drivername!r}: "
        "use postgresql://... or sqlite:///PATH (or leave it unset for the state dir)"
    )


def sqlite_file(url: str | None, state_dir: str | Path) -> Path | None:
    """The file of the store at ``url`` (or the state dir's default) when it is SQLite;
    None for PostgreSQL."""
    parsed = store_url(url, state_dir)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database).expanduser().resolve()


def display_url(url: URL) -> str:
    """The URL as users should see it: the scheme they would type, no password."""
    shown = url.set(drivername=url.get_backend_name())
    return shown.render_as_string(hide_password=True)


def create_store_engine(url: URL) -> Engine:
    """An engine for ``url`` (from :func:`store_url`) with the backend's settings."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    # pool_pre_ping: a long-running server outlives server restarts and idle cut-offs;
    # a dead pooled connection is replaced instead of failing the next unit of work.
    engine = create_engine(url, pool_pre_ping=True)
    event.listen(engine, "begin", _postgresql_begin)
    return engine


def _postgresql_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")


def _sqlite_engine(url: URL) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    assert isinstance(dbapi_connection, sqlite3.Connection)
    # Stop the sqlite3 module from issuing its own deferred BEGIN, so that _sqlite_begin
    # decides how every transaction starts (SQLAlchemy's documented pysqlite recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        # WAL: readers see a snapshot while one writer commits, instead of failing.
        mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL journal mode (got {mode!r})")
        # NORMAL is durable in WAL mode except for the last commits on power loss.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A deferred transaction that reads and then writes cannot wait for the write lock
    # (SQLite answers "database is locked" at once to avoid a deadlock). Taking the
    # write lock at BEGIN makes concurrent writers from several processes queue up on
    # busy_timeout instead. Read-only units keep a deferred BEGIN and never queue.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# -- checkpoints of a long-running engine ----------------------------------------------


def take_over_checkpoints(engine: Engine) -> bool:
    """Stop this engine's SQLite connections from checkpointing the WAL as they commit;
    :func:`checkpoint` must then be called regularly. False (nothing changed) on
    PostgreSQL.

    By default the commit that grows the WAL past 1,000 pages copies it into the database
    and syncs it, while it holds the write lock: every few seconds under load, one run's
    bookkeeping (and whoever waits for the lock, a due fire among them) took tens of
    milliseconds longer. A checkpoint from another thread needs no write lock.
    """
    if engine.dialect.name != "sqlite":
        return False
    event.listen(engine, "connect", _manual_checkpoints)
    engine.dispose()  # connections pooled already reconnect with it
    return True


def checkpoint(engine: Engine) -> tuple[int, int]:
    """A passive checkpoint (it waits for no reader or writer); returns the WAL's frames
    and how many of them are in the database now."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            row = cursor.fetchone()
            assert row is not None, "wal_checkpoint answers one row"
            _busy, frames, done = row
        finally:
            cursor.close()
    finally:
        raw.close()
    return int(frames), int(done)


def _manual_checkpoints(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint = 0")


def private_file(path: Path) -> None:
    """Create ``path`` (empty: an empty file is an empty SQLite database) readable by
    its owner only, or make it so; SQLite gives its journal files the same mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
