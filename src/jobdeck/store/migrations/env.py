"""Alembic's entry point for the store's migrations.

jobdeck runs it programmatically (:mod:`jobdeck.store.migrate`) and hands over a
connection that is already inside a transaction, so that the whole upgrade commits or
rolls back as one unit. Run by the ``alembic`` command instead, it builds an engine from
``sqlalchemy.url`` with the same settings as the store.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from jobdeck.store.engine import create_store_engine, store_url
from jobdeck.store.tables import metadata

# Any fixed number will do; PostgreSQL advisory locks share one namespace per database.
MIGRATION_LOCK_KEY = 0x6A6F626465636B  # "jobdeck"


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite and PostgreSQL both roll DDL back with the transaction (on SQLite
        # because the engine issues BEGIN itself), so a failed upgrade leaves nothing.
        transactional_ddl=True,
        # SQLite alters a table by copying it; autogenerate must write it that way.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes opening a new database at once: the second waits here and
            # then finds the schema at head. (SQLite gets this from BEGIN IMMEDIATE.)
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        context.run_migrations()


def run_offline() -> None:
    """Writes the SQL for a DBA to review and run (``alembic upgrade head --sql``)."""
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("offline migrations need sqlalchemy.url in the Alembic config")
    context.configure(
        url=store_url(url, "."),
        target_metadata=metadata,
        literal_binds=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        run_migrations(given)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("give sqlalchemy.url or a connection to run the migrations")
    engine = create_store_engine(store_url(url, "."))
    try:
        with engine.begin() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
