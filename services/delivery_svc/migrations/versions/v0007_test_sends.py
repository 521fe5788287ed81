"""test sends: the skip flags of each campaign's latest test send (SendTestDelivery), which the
dispatcher reads for a campaign without a delivery yet

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def id_string(length: int = 255) -> sa.types.TypeEngine[str]:
    """Sorts by bytes on every backend: SQLite's BINARY collation, "C" on PostgreSQL."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "test_sends",
        sa.Column("campaign_id", id_string(), nullable=False),
        sa.Column("skip_push", sa.Boolean(), nullable=False),
        sa.Column("skip_webhook", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_test_sends")),
    )


def downgrade() -> None:
    op.drop_table("test_sends")
