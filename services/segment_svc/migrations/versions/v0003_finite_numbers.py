"""finite numbers: NaN and ±Infinity written into JSON documents before requests were checked become null

Before DESIGN §10.3's checks, a binary client could store NaN or ±Infinity in a user's, channel's
or member's `custom` (or a device's `keys`). On SQLite the row then held text that is not JSON,
and every custom-field filter over the table failed on it ("malformed JSON"): one caller broke
queries for everybody. PostgreSQL's JSONB refuses such numbers, so only SQLite holds any. Each
such number becomes null, in the JSON column and in the user's stored message (`doc`) alike.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:30:00.000000
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from google.protobuf import struct_pb2

from herald.segment.v1 import directory_pb2

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, its key columns, the JSON column that may hold non-finite numbers)
DOCUMENTS = [
    ("users", ("id",), "custom"),
    ("channels", ("cid",), "custom"),
    ("channel_members", ("cid", "user_id"), "custom"),
    ("devices", ("user_id", "id"), "keys"),
]


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return  # PostgreSQL never stored one
    for table, keys, column in DOCUMENTS:
        # json_valid is 0 exactly for such text (Python's json writes NaN, Infinity, -Infinity).
        broken = connection.execute(sa.text(
            f"SELECT {', '.join(keys)}, {column} FROM {table} WHERE json_valid({column}) = 0")).all()
        for row in broken:
            finite = _finite(json.loads(row[-1]))
            where = {key: row[i] for i, key in enumerate(keys)}
            _update(connection, table, where, {column: json.dumps(finite, separators=(",", ":"))})
            if table == "users":
                _update(connection, table, where, {"doc": _user_doc(connection, where["id"], finite)})


def downgrade() -> None:
    """Nothing to undo: null is what these numbers mean from now on."""


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _update(connection: sa.Connection, table: str, where: dict[str, Any], values: dict[str, Any]) -> None:
    settings = ", ".join(f"{name} = :set_{name}" for name in values)
    condition = " AND ".join(f"{name} = :{name}" for name in where)
    connection.execute(sa.text(f"UPDATE {table} SET {settings} WHERE {condition}"),
                       {**where, **{f"set_{name}": value for name, value in values.items()}})


def _user_doc(connection: sa.Connection, user_id: str, custom: dict[str, Any]) -> bytes:
    """The user's stored message with its custom data replaced by the repaired one."""
    user = directory_pb2.User.FromString(
        connection.execute(sa.text("SELECT doc FROM users WHERE id = :id"), {"id": user_id}).scalar_one())
    user.ClearField("custom")
    user.custom.CopyFrom(_struct(custom))
    return user.SerializeToString()


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct
