"""dispatch shards: a position per shard of each destination (destination, shards, shard), the
single position of each destination carried over as its one shard of one (shards 1, shard 0)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    _remake("SELECT destination, position, updated_at FROM dispatch_positions", sharded=True)


def downgrade() -> None:
    # Each destination's slowest shard: nothing is skipped, what faster shards passed is sent again.
    _remake("SELECT destination, MIN(position) AS position, MAX(updated_at) AS updated_at FROM dispatch_positions "
            "GROUP BY destination", sharded=False)


def _remake(rows_sql: str, *, sharded: bool) -> None:
    """Makes the table again with or without the shard columns (the key changes; the same way on
    both backends), with the rows `rows_sql` reads from the old one as the driver reads them
    (SQLite's timestamps stay the text they are); the rows of before shards become shard 0 of 1."""
    bind = op.get_bind()
    rows = [dict(row._mapping) for row in bind.execute(sa.text(rows_sql))]
    op.drop_table("dispatch_positions")
    shard_columns = [sa.Column("shards", sa.Integer(), nullable=False),
                     sa.Column("shard", sa.Integer(), nullable=False)] if sharded else []
    op.create_table(
        "dispatch_positions",
        sa.Column("destination", sa.String(32), nullable=False),
        *shard_columns,
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("destination", *(c.name for c in shard_columns), name=op.f("pk_dispatch_positions")),
    )
    if rows:
        shard_names, shard_values = (", shards, shard", ", 1, 0") if sharded else ("", "")
        bind.execute(sa.text(f"INSERT INTO dispatch_positions (destination{shard_names}, position, updated_at) "
                             f"VALUES (:destination{shard_values}, :position, :updated_at)"), rows)
