"""devices: the push devices of users (DirectoryService.UpsertDevices / ListDevices / DeleteDevices)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 04:58:12.392187
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The column types as this revision made them, spelled out (see v0001).
UTC = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
NO_ROWID = {"sqlite_with_rowid": False}


def id_string(length: int = 255) -> sa.types.TypeEngine[str]:
    """Sorts by bytes on every backend: SQLite's BINARY collation, "C" on PostgreSQL."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("user_id", id_string(), nullable=False),
        sa.Column("id", id_string(), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(), nullable=False),
        sa.Column("keys", JSON_DOC, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "id", name=op.f("pk_devices")),
        **NO_ROWID,
    )


def downgrade() -> None:
    op.drop_table("devices")
