"""campaign control: a campaign's own max_send_rate, its pauses (counted: each pause and resume
is an event of its own), and the send rate and eta its delivery last reported

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 04:00:00
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
    # SQLite rebuilds the table, so that its DDL reads as create_all writes it; PostgreSQL alters it.
    recreate: Literal["always", "auto"] = "always" if op.get_bind().dialect.name == "sqlite" else "auto"
    with op.batch_alter_table("campaigns", recreate=recreate) as batch:
        batch.add_column(sa.Column("max_send_rate", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("pauses", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("send_rate", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("eta", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        for column in ("eta", "send_rate", "pauses", "max_send_rate"):
            batch.drop_column(column)
