"""The store's queries for invocation keys (de-duplication of command requests).

:class:`SqlKeys` is the keys aggregate of a unit of work (:class:`jobdeck.store.sql.SqlTx`);
no method reads the clock.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jobdeck.store.tables import NAME_LENGTH, as_utc, invocation_keys


def stored_key(key: str) -> str:
    """Keys longer than the column are kept as their digest (still unique)."""
    if len(key) <= NAME_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class SqlKeys:
    """Invocation keys, on the connection of one unit of work."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def claim_key(self, key: str, *, at: datetime) -> bool:
        """True when this caller is the first ever to claim ``key``.

        An insert that the primary key lets succeed once: a concurrent claimer waits for
        this transaction and then finds the key taken. Losing leaves the transaction usable.
        """
        values = {"key": stored_key(key), "created_at": as_utc(at, "at")}
        dialect = self.connection.dialect.name
        insert: postgresql.Insert | sqlite.Insert
        if dialect == "postgresql":
            insert = postgresql.insert(invocation_keys).values(values).on_conflict_do_nothing()
        elif dialect == "sqlite":
            insert = sqlite.insert(invocation_keys).values(values).on_conflict_do_nothing()
        else:
            raise NotImplementedError(f"claiming an invocation key is not supported on {dialect}")
        won = self.connection.execute(insert.returning(invocation_keys.c.key)).first()
        return won is not None

    def attach_run(self, key: str, run_id: int) -> None:
        query = (
            update(invocation_keys)
            .where(invocation_keys.c.key == stored_key(key))
            .values(run_id=run_id)
        )
        self.connection.execute(query)

    def key_run(self, key: str) -> int | None:
        """The run that the request with ``key`` started, if any."""
        query = select(invocation_keys.c.run_id).where(invocation_keys.c.key == stored_key(key))
        return cast("int | None", self.connection.scalar(query))

    def prune_keys(self, *, before: datetime) -> int:
        """Forgets keys claimed before ``before``; Slack stops retrying within minutes."""
        query = delete(invocation_keys).where(
            invocation_keys.c.created_at < as_utc(before, "before")
        )
        return self.connection.execute(query).rowcount

    def release_key(self, key: str) -> None:
        """Frees a key whose request started nothing, so that it may be tried again."""
        self.connection.execute(
            delete(invocation_keys).where(invocation_keys.c.key == stored_key(key))
        )
