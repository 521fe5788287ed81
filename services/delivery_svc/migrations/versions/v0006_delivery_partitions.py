"""delivery partitions: the ranges of target ids PostgreSQL delivery replicas share a campaign
by, each with its own checkpoint and lease; a delivery's pace (`paced_until`) and send rate,
shared by them; and its generation, moved on by every resume (pause and resume)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAX_CID = 255 + 1 + 64  # services.kit.limits.MAX_CID as of this revision


def id_string(length: int = 255) -> sa.types.TypeEngine[str]:
    """Sorts by bytes on every backend: SQLite's BINARY collation, "C" on PostgreSQL."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    # SQLite rebuilds the table, so that its DDL reads as create_all writes it; PostgreSQL alters it.
    recreate: Literal["always", "auto"] = "always" if op.get_bind().dialect.name == "sqlite" else "auto"
    with op.batch_alter_table("deliveries", recreate=recreate) as batch:
        batch.add_column(sa.Column("paced_until", sa.Float(), nullable=True))
        batch.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("rate", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("rate_from", sa.Float(), nullable=True))
        batch.add_column(sa.Column("rate_base", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "delivery_partitions",
        sa.Column("campaign_id", id_string(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("after_id", id_string(MAX_CID), nullable=False),
        sa.Column("last_id", id_string(MAX_CID), nullable=False),
        sa.Column("cursor", id_string(MAX_CID), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", "part", name=op.f("pk_delivery_partitions")),
    )
    op.create_index("ix_delivery_partitions_open", "delivery_partitions", ["campaign_id"],
                    postgresql_where=sa.text("NOT done"), sqlite_where=sa.text("done = 0"))


def downgrade() -> None:
    op.drop_index("ix_delivery_partitions_open", table_name="delivery_partitions")
    op.drop_table("delivery_partitions")
    with op.batch_alter_table("deliveries") as batch:
        for column in ("rate_base", "rate_from", "rate", "generation"):
            batch.drop_column(column)
        batch.drop_column("paced_until")
