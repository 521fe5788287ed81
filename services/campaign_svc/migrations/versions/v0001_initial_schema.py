"""initial schema: the tables the campaign service made with create_all before migrations

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


def id_string(length: int = 255) -> sa.types.TypeEngine[str]:
    """Sorts by bytes on every backend: SQLite's BINARY collation, "C" on PostgreSQL."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", id_string(), nullable=False),
        sa.Column("instance", sa.String(36), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("sender_id", id_string(), nullable=False),
        sa.Column("segment_ids", JSON_DOC, nullable=False),
        sa.Column("segment_type", sa.String(16), nullable=True),
        sa.Column("user_ids", JSON_DOC, nullable=False),
        sa.Column("sender_mode", sa.Integer(), nullable=False),
        sa.Column("sender_visibility", sa.Integer(), nullable=False),
        sa.Column("message_template", JSON_DOC, nullable=False),
        sa.Column("channel_template", JSON_DOC, nullable=True),
        sa.Column("create_channels", sa.Boolean(), nullable=False),
        sa.Column("show_channels", sa.Boolean(), nullable=False),
        sa.Column("skip_push", sa.Boolean(), nullable=False),
        sa.Column("skip_webhook", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stop_reason", sa.Integer(), nullable=False),
        sa.Column("stop_message", sa.Text(), nullable=False),
        sa.Column("scheduled_for", UTC, nullable=True),
        sa.Column("stop_at", UTC, nullable=True),
        sa.Column("start_owner", sa.String(64), nullable=True),
        sa.Column("start_claimed_at", UTC, nullable=True),
        sa.Column("delivery_started", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stats_started_at", UTC, nullable=True),
        sa.Column("stats_completed_at", UTC, nullable=True),
        sa.Column("stats_messages_sent", sa.Integer(), nullable=False),
        sa.Column("stats_channels_created", sa.Integer(), nullable=False),
        sa.Column("stats_users_sent", sa.Integer(), nullable=False),
        sa.Column("stats_users_read", sa.Integer(), nullable=False),
        sa.Column("recipients_total", sa.Integer(), nullable=False),
        sa.Column("recipients_skipped", sa.Integer(), nullable=False),
        sa.Column("recipients_failed", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index("ix_campaigns_status_scheduled_for", "campaigns", ["status", "scheduled_for"])
    op.create_index("ix_campaigns_status_stop_at", "campaigns", ["status", "stop_at"])
    op.create_index("ix_campaigns_created_at_id", "campaigns", ["created_at", "id"])
    op.create_index("ix_campaigns_updated_at_id", "campaigns", ["updated_at", "id"])
    op.create_index("ix_campaigns_sender_id", "campaigns", ["sender_id"])
    op.create_table(
        "campaign_segments",
        sa.Column("campaign_id", id_string(), nullable=False),
        sa.Column("segment_id", id_string(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_campaign_segments_campaign_id_campaigns"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("campaign_id", "segment_id", name=op.f("pk_campaign_segments")),
    )
    op.create_index("ix_campaign_segments_segment_id", "campaign_segments", ["segment_id"])
    op.create_table(
        "retired_campaign_ids",
        sa.Column("id", id_string(), nullable=False),
        sa.Column("retired_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retired_campaign_ids")),
    )
    op.create_table(
        "campaign_users",
        sa.Column("campaign_id", id_string(), nullable=False),
        sa.Column("user_id", id_string(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_campaign_users_campaign_id_campaigns"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("campaign_id", "user_id", name=op.f("pk_campaign_users")),
    )
    op.create_table(
        "campaign_events",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("campaign_id", id_string(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("published_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_events")),
    )
    op.create_index("ix_campaign_events_published_at", "campaign_events", ["published_at"])


def downgrade() -> None:
    for table in ("campaign_events", "campaign_users", "retired_campaign_ids", "campaign_segments", "campaigns"):
        op.drop_table(table)
