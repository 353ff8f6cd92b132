"""The hot statements of the queue store use the plans that keep them flat as a queue
grows: SQLite reads received messages by id, never by walking the queue's index (which
made deleting 10 messages cost 2 ms under a backlog of 20,000)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from jobdeck.store import open_store


def test_deleting_received_messages_finds_them_by_id(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
        if statement.startswith("DELETE FROM queue_messages"):
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        ids = list(range(1, 11))
        with store.transaction() as tx:
            tx.queues.delete_received("q", [(i, f"token{i}") for i in ids])
            tx.queues.delete_received("q", [(i, f"message{i}") for i in ids], by_message_id=True)
        assert len(seen) == 2
        with store.engine.connect() as connection:
            for statement, params in seen:
                plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
                details = " ".join(str(row[-1]) for row in plan)
                assert "INTEGER PRIMARY KEY" in details, details
                assert "ix_queue_messages_queue_visible_ms_id" not in details, details
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
        store.close()
