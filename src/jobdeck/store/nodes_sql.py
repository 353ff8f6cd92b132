"""The store's queries for the nodes of a cluster and the leader's lease.

:class:`SqlNodes` is the nodes aggregate of a unit of work
(:class:`jobdeck.store.sql.SqlTx`). The lease is one row, taken and renewed by
conditional statements that compare its expiry and its token, so that two engines that
try at once cannot both win (PostgreSQL re-checks the condition of an ``UPDATE`` on the
row it waited for). No method reads the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, RowMapping, and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jobdeck.store.errors import Fenced, NotFound
from jobdeck.store.node_records import LeaderLease, Node
from jobdeck.store.tables import as_utc, leader_lease, nodes

LEASE = "leader"


class SqlNodes:
    """Nodes and the leader's lease, on the connection of one unit of work."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    # -- nodes ---------------------------------------------------------------------------

    def nodes(self) -> list[Node]:
        query = select(nodes).order_by(nodes.c.started_at, nodes.c.id)
        return [_node(row) for row in self.connection.execute(query).mappings()]

    def node(self, node_id: str) -> Node | None:
        query = select(nodes).where(nodes.c.id == node_id)
        row = self.connection.execute(query).mappings().first()
        return None if row is None else _node(row)

    def register_node(self, node: Node) -> Node:
        values = {
            "id": node.id,
            "host": node.host,
            "pid": node.pid,
            "version": node.version,
            "started_at": as_utc(node.started_at, "started_at"),
            "heartbeat_at": as_utc(node.heartbeat_at, "heartbeat_at"),
            "draining": node.draining,
            "drain_deadline": node.drain_deadline,
            "drained": False,
            "lost_after_ms": round(node.lost_after.total_seconds() * 1000),
            "url": node.url,
        }
        changed = {k: v for k, v in values.items() if k not in ("id", "draining", "drain_deadline")}
        dialect = self.connection.dialect.name
        insert: postgresql.Insert | sqlite.Insert
        if dialect == "postgresql":
            insert = postgresql.insert(nodes).values(values)
        elif dialect == "sqlite":
            insert = sqlite.insert(nodes).values(values)
        else:
            raise NotImplementedError(f"registering a node is not supported on {dialect}")
        upsert = insert.on_conflict_do_update(index_elements=["id"], set_=changed)
        row = self.connection.execute(upsert.returning(*nodes.c)).mappings().one()
        return _node(row)

    def beat(self, node_id: str, *, at: datetime) -> Node | None:
        query = (
            update(nodes)
            .where(nodes.c.id == node_id)
            .values(heartbeat_at=as_utc(at, "at"))
            .returning(*nodes.c)
        )
        row = self.connection.execute(query).mappings().first()
        return None if row is None else _node(row)

    def set_drain(self, node_id: str, *, draining: bool, deadline: datetime | None) -> Node:
        query = (
            update(nodes)
            .where(nodes.c.id == node_id)
            .values(
                draining=draining,
                drain_deadline=as_utc(deadline, "deadline") if deadline else None,
                drained=False,
            )
            .returning(*nodes.c)
        )
        row = self.connection.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"no node {node_id!r}")
        return _node(row)

    def mark_drained(self, node_id: str) -> None:
        query = update(nodes).where(nodes.c.id == node_id, nodes.c.draining).values(drained=True)
        self.connection.execute(query)

    def forget_node(self, node_id: str) -> bool:
        query = delete(nodes).where(nodes.c.id == node_id)
        return bool(self.connection.execute(query).rowcount)

    # -- the leader's lease --------------------------------------------------------------

    def leader(self) -> LeaderLease | None:
        query = select(leader_lease).where(leader_lease.c.name == LEASE)
        row = self.connection.execute(query).mappings().first()
        return None if row is None else _lease(row)

    def acquire_leadership(
        self, node_id: str, *, now: datetime, expires_at: datetime, own: bool = False
    ) -> LeaderLease | None:
        at, until = as_utc(now, "now"), as_utc(expires_at, "expires_at")
        values = {
            "name": LEASE,
            "holder": node_id,
            "token": 1,
            "acquired_at": at,
            "expires_at": until,
        }
        dialect = self.connection.dialect.name
        insert: postgresql.Insert | sqlite.Insert
        if dialect == "postgresql":
            insert = postgresql.insert(leader_lease).values(values)
        elif dialect == "sqlite":
            insert = sqlite.insert(leader_lease).values(values)
        else:
            raise NotImplementedError(f"a leader's lease is not supported on {dialect}")
        first = insert.on_conflict_do_nothing().returning(*leader_lease.c)
        row = self.connection.execute(first).mappings().first()
        if row is not None:
            return _lease(row)
        takeover = (
            update(leader_lease)
            .where(
                leader_lease.c.name == LEASE,
                or_(leader_lease.c.expires_at <= at, leader_lease.c.holder == node_id)
                if own
                else leader_lease.c.expires_at <= at,
            )
            .values(
                holder=node_id, token=leader_lease.c.token + 1, acquired_at=at, expires_at=until
            )
            .returning(*leader_lease.c)
        )
        row = self.connection.execute(takeover).mappings().first()
        return None if row is None else _lease(row)

    def renew_leadership(
        self, node_id: str, token: int, *, now: datetime, expires_at: datetime
    ) -> LeaderLease | None:
        query = (
            update(leader_lease)
            .where(_live(node_id, token, now))
            .values(expires_at=as_utc(expires_at, "expires_at"))
            .returning(*leader_lease.c)
        )
        row = self.connection.execute(query).mappings().first()
        return None if row is None else _lease(row)

    def resign_leadership(self, node_id: str, token: int, *, now: datetime) -> bool:
        query = (
            update(leader_lease)
            .where(_live(node_id, token, now))
            .values(expires_at=as_utc(now, "now"))
        )
        return bool(self.connection.execute(query).rowcount)

    def fence(self, node_id: str, token: int, *, now: datetime) -> None:
        query = select(leader_lease).where(leader_lease.c.name == LEASE)
        if self.connection.dialect.name == "postgresql":
            query = query.with_for_update(read=True)
        row = self.connection.execute(query).mappings().first()
        current = None if row is None else _lease(row)
        if current is None or current.token != token or not current.held_by(node_id, now):
            raise Fenced(node_id, token, current)


def _live(node_id: str, token: int, now: datetime) -> ColumnElement[bool]:
    return and_(
        leader_lease.c.name == LEASE,
        leader_lease.c.holder == node_id,
        leader_lease.c.token == token,
        leader_lease.c.expires_at > as_utc(now, "now"),
    )


def _node(row: RowMapping) -> Node:
    return Node(
        id=row["id"],
        host=row["host"],
        pid=row["pid"],
        version=row["version"],
        started_at=row["started_at"],
        heartbeat_at=row["heartbeat_at"],
        draining=bool(row["draining"]),
        drain_deadline=row["drain_deadline"],
        drained=bool(row["drained"]),
        lost_after=timedelta(milliseconds=row["lost_after_ms"]),
        url=row["url"],
    )


def _lease(row: RowMapping) -> LeaderLease:
    return LeaderLease(
        holder=row["holder"],
        token=int(row["token"]),
        acquired_at=row["acquired_at"],
        expires_at=row["expires_at"],
    )
