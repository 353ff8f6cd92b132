"""Nodes: the engines of a cluster on one store, and the leader's lease with its
fencing token.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

The types are spelled out here rather than imported from ``tables.py``: a migration
must keep creating what it created on the day it was written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("drain_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("drained", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("lost_after_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
    )
    op.create_table(
        "leader_lease",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leader_lease"),
    )


def downgrade() -> None:
    op.drop_table("leader_lease")
    op.drop_table("nodes")
