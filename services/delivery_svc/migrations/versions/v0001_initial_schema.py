"""initial schema: the tables the delivery service made with create_all before migrations

Revision ID: 0001
Revises:
Create Date: 2026-12-01 04:26:21.037490
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The column types as this revision made them, spelled out here (not imported from
# services.kit.db) so that a later change there cannot change what this revision did.
UTC = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
MAX_CID = 320  # "type:id": type ≤ 64, id ≤ 255


def id_string(length: int = 255) -> sa.types.TypeEngine[str]:
    """Sorts by bytes on every backend: SQLite's BINARY collation, "C" on PostgreSQL."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("campaign_id", id_string(), nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("stop_reason", sa.Integer(), nullable=False),
        sa.Column("stop_message", sa.Text(), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("recipients_total", sa.Integer(), nullable=True),
        *(counter(name) for name in ("sent", "skipped", "failed", "messages_sent", "channels_created",
                                     "users_sent")),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("completed_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_deliveries")),
    )
    op.create_index("ix_deliveries_status", "deliveries", ["status"])
    op.create_table(
        "messages",
        sa.Column("id", id_string(64), nullable=False),
        sa.Column("cid", id_string(MAX_CID), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("user_id", id_string(), nullable=False),
        sa.Column("attachments", JSON_DOC, nullable=False),
        sa.Column("custom", JSON_DOC, nullable=False),
        sa.Column("poll_id", sa.String(255), nullable=False),
        sa.Column("created_by_campaign_id", id_string(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.create_index("ix_messages_cid_id", "messages", ["cid", "id"])
    op.create_index("ix_messages_campaign_id", "messages", ["created_by_campaign_id", "id"])
    op.create_table(
        "recipient_log",
        sa.Column("campaign_id", id_string(), nullable=False),
        sa.Column("target_id", id_string(MAX_CID), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("cid", id_string(MAX_CID), nullable=False),
        sa.Column("message_id", id_string(64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "target_id", name=op.f("pk_recipient_log")),
    )
    op.create_table(
        "reads",
        sa.Column("campaign_id", id_string(), nullable=False),
        sa.Column("user_id", id_string(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "user_id", name=op.f("pk_reads")),
    )
    op.create_table(
        "events",
        # INTEGER PRIMARY KEY is SQLite's autoincrementing rowid; BIGSERIAL on PostgreSQL.
        sa.Column("sequence", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("id", id_string(600), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("campaign_id", id_string(), nullable=False),
        sa.Column("cid", id_string(MAX_CID), nullable=False),
        sa.Column("message_id", id_string(64), nullable=False),
        sa.Column("user_ids", JSON_DOC, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
    )
    op.create_table(
        "monthly_usage",
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_monthly_usage")),
    )


def downgrade() -> None:
    for table in ("monthly_usage", "events", "reads", "recipient_log", "messages", "deliveries"):
        op.drop_table(table)
