"""event positions: events get a `position` set by the sequencer once committed (the order
readers follow), and `event_sequencer` keeps the last one given out

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Events already there get their positions from the sequencer's first rounds, in insertion order.
    # SQLite rebuilds the table, so that its DDL reads as create_all writes it; PostgreSQL alters it.
    recreate: Literal["always", "auto"] = "always" if op.get_bind().dialect.name == "sqlite" else "auto"
    with op.batch_alter_table("events", recreate=recreate) as batch:
        batch.add_column(sa.Column("position", sa.BigInteger(), nullable=True))
    op.create_index("ix_events_position", "events", ["position"], unique=True)
    op.create_index("ix_events_unpositioned", "events", ["sequence"],
                    postgresql_where=sa.text("position IS NULL"), sqlite_where=sa.text("position IS NULL"))
    op.create_table(
        "event_sequencer",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_sequencer")),
    )


def downgrade() -> None:
    op.drop_table("event_sequencer")
    op.drop_index("ix_events_unpositioned", table_name="events")
    op.drop_index("ix_events_position", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("position")
