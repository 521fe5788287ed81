"""event users: who each in-app event is for, one row per (user, position), written by the
sequencer with the positions, so that SubscribeEvents finds a user's events by index

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def id_string(length: int = 255) -> sa.types.TypeEngine[str]:
    """Sorts by bytes on every backend: SQLite's BINARY collation, "C" on PostgreSQL."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "event_users",
        sa.Column("user_id", id_string(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "position", name=op.f("pk_event_users")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_event_users_position", "event_users", ["position"])
    # Events positioned before this revision: indexed here, as the sequencer indexes new ones.
    # SQLite: json_each; PostgreSQL: jsonb_array_elements_text.
    elements = "jsonb_array_elements_text" if op.get_bind().dialect.name == "postgresql" else "json_each"
    op.execute(f"INSERT INTO event_users (user_id, position) SELECT DISTINCT u.value, e.position "
               f"FROM events AS e, {elements}(e.user_ids) AS u "
               f"WHERE e.position IS NOT NULL AND e.type IN ('channel.created', 'message.new')")


def downgrade() -> None:
    op.drop_index("ix_event_users_position", table_name="event_users")
    op.drop_table("event_users")
