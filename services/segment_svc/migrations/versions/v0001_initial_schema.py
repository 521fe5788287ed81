"""initial schema: the tables the segment service made with create_all before migrations

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
NULLABLE_JSON_DOC = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
NO_ROWID = {"sqlite_with_rowid": False}


def id_string(length: int = 255) -> sa.types.TypeEngine[str]:
    """Sorts by bytes on every backend: SQLite's BINARY collation, "C" on PostgreSQL."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", id_string(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("teams", JSON_DOC, nullable=False),
        sa.Column("custom", JSON_DOC, nullable=False),
        sa.Column("doc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        **NO_ROWID,
    )
    op.create_table(
        "channels",
        sa.Column("cid", id_string(320), nullable=False),
        sa.Column("type", id_string(64), nullable=False),
        sa.Column("id", id_string(), nullable=False),
        sa.Column("team", sa.String(), nullable=False),
        sa.Column("custom", JSON_DOC, nullable=False),
        sa.Column("created_by_id", id_string(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("cid", name=op.f("pk_channels")),
        **NO_ROWID,
    )
    op.create_table(
        "channel_members",
        sa.Column("cid", id_string(320), nullable=False),
        sa.Column("user_id", id_string(), nullable=False),
        sa.Column("channel_role", sa.String(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("archived_at", UTC, nullable=True),
        sa.Column("custom", JSON_DOC, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("cid", "user_id", name=op.f("pk_channel_members")),
        **NO_ROWID,
    )
    op.create_index("ix_channel_members_user_id_cid", "channel_members", ["user_id", "cid"])
    op.create_table(
        "segments",
        sa.Column("id", id_string(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("filter", NULLABLE_JSON_DOC, nullable=True),
        sa.Column("all_users", sa.Boolean(), nullable=False),
        sa.Column("all_sender_channels", sa.Boolean(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("size_dirty", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
    )
    op.create_index("ix_segments_created_at", "segments", ["created_at"])
    op.create_table(
        "segment_targets",
        sa.Column("segment_id", id_string(), nullable=False),
        sa.Column("target_id", id_string(320), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"], name=op.f("fk_segment_targets_segment_id_segments"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("segment_id", "target_id", name=op.f("pk_segment_targets")),
        **NO_ROWID,
    )
    op.create_table(
        "ensured_channels",
        sa.Column("campaign_id", id_string(), nullable=False),
        sa.Column("recipient_id", id_string(320), nullable=False),
        sa.Column("cid", id_string(320), nullable=False),
        sa.Column("created", sa.Boolean(), nullable=False),
        sa.Column("skip_reason", sa.String(64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "recipient_id", name=op.f("pk_ensured_channels")),
        **NO_ROWID,
    )


def downgrade() -> None:
    for table in ("ensured_channels", "segment_targets", "segments", "channel_members", "channels", "users"):
        op.drop_table(table)
