"""dispatch: each destination's position in the event log, dead letters, and the replays queued
from them

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The column types as this revision made them (see v0001).
UTC = sa.DateTime(timezone=True)


def id_string(length: int = 255) -> sa.types.TypeEngine[str]:
    """Sorts by bytes on every backend: SQLite's BINARY collation, "C" on PostgreSQL."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def letter_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("destination", sa.String(32), nullable=False),
        sa.Column("webhook_id", id_string(), nullable=False),
        sa.Column("event_id", id_string(600), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("campaign_id", id_string(), nullable=False),
        sa.Column("device_id", id_string(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_http_status", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("event", sa.LargeBinary(), nullable=False),
        sa.Column("first_attempt_at", UTC, nullable=True),
        sa.Column("last_attempt_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    op.create_table(
        "dispatch_positions",
        sa.Column("destination", sa.String(32), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("destination", name=op.f("pk_dispatch_positions")),
    )
    letter_table("dead_letters")
    op.create_index("ix_dead_letters_created_at_id", "dead_letters", ["created_at", "id"])
    op.create_index("ix_dead_letters_campaign_id", "dead_letters", ["campaign_id", "id"])
    op.create_index("ix_dead_letters_webhook_id", "dead_letters", ["webhook_id"])
    letter_table("replays")
    op.create_index("ix_replays_destination_created_at_id", "replays", ["destination", "created_at", "id"])


def downgrade() -> None:
    for table in ("replays", "dead_letters", "dispatch_positions"):
        op.drop_table(table)
