"""Running the store's Alembic migrations from code: no ``alembic.ini`` needed."""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine

from jobdeck.store.engine import READ_ONLY

# A package resource, so that it resolves wherever jobdeck is installed.
SCRIPT_LOCATION = "jobdeck.store:migrations"

# Alembic reports every step ("Context impl SQLiteImpl.", "Running upgrade ...") at
# INFO, and every command opens, hence migrates, the store: wherever INFO is logged
# that would be noise on each run. A level set on the "alembic" logger before jobdeck
# is imported (to see the steps) is left as it is.
_alembic_log = logging.getLogger("alembic")
if _alembic_log.level == logging.NOTSET:
    _alembic_log.setLevel(logging.WARNING)


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer jobdeck than this one."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the store's migrations, bound to ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema version this jobdeck knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the store's migrations have no head revision")
    return str(head)


def current_revision(engine: Engine) -> str | None:
    """The schema version of the database behind ``engine``; None when it is empty."""
    with engine.connect() as connection:
        connection.execution_options(**{READ_ONLY: True})
        with connection.begin():
            return _current(connection)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrates the database to ``revision`` in one transaction; a no-op when there."""
    with engine.begin() as connection:
        config = alembic_config(connection)
        current = _current(connection)
        scripts = ScriptDirectory.from_config(config)
        if current is not None:
            try:
                scripts.get_revision(current)
            except CommandError as unknown:
                raise SchemaTooNew(
                    f"the store's schema is at version {current}, which this jobdeck "
                    f"does not know (its newest is {scripts.get_current_head()}); "
                    "run a jobdeck at least as new as the one that migrated it"
                ) from unknown
        command.upgrade(config, revision)


def _current(connection: Connection) -> str | None:
    revision = MigrationContext.configure(connection).get_current_revision()
    return None if revision is None else str(revision)
