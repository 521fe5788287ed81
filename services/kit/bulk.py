"""Bulk writes through the driver's executemany, for the hot paths.

SQLAlchemy's per-row parameter processing costs more than the insert itself when a batch
writes thousands of small rows. Here rows are tuples already in the driver's terms
(`DriverValues` encodes them exactly as the column types would: JSON text, and for SQLite
the dialect's datetime text in UTC; asyncpg takes aware datetimes), and the SQL is built
once per table and column list.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


class DriverValues:
    """Encodes values as the session's driver takes them."""

    def __init__(self, dialect_name: str) -> None:
        self.sqlite = dialect_name == "sqlite"
        self._last_time: dt.datetime | None = None  # rows of a batch share one timestamp:
        self._last_text = ""  # encode it once

    @classmethod
    def of(cls, session: AsyncSession) -> "DriverValues":
        return cls(session.get_bind().dialect.name)

    def time(self, value: dt.datetime | None) -> Any:
        if value is None or not self.sqlite:
            return value
        if value is not self._last_time:
            self._last_time = value
            self._last_text = value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        return self._last_text

    @staticmethod
    def json(value: Any) -> str:
        if value == {}:  # the common case of empty custom data
            return "{}"
        return _COMPACT_JSON.encode(value)  # json.dumps(value, separators=...) without a new encoder each call

    def insert_sql(self, table: Table, columns: Sequence[str], update: Sequence[str] = ()) -> str:
        return _insert_sql(self.sqlite, table.name, tuple(columns),
                           tuple(c.name for c in table.primary_key.columns), tuple(update))


@lru_cache(maxsize=64)
def _insert_sql(sqlite: bool, table: str, columns: tuple[str, ...], key: tuple[str, ...],
                update: tuple[str, ...]) -> str:
    marks = ", ".join("?" if sqlite else f"${i}" for i in range(1, len(columns) + 1))
    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table}" ({names}) VALUES ({marks}) ON CONFLICT '
    if not update:
        return sql + "DO NOTHING"
    keys = ", ".join(f'"{c}"' for c in key)
    return sql + f"({keys}) DO UPDATE SET " + ", ".join(f'"{c}" = excluded."{c}"' for c in update)


async def write_tuples(session: AsyncSession, values: DriverValues, table: Table, columns: Sequence[str],
                       rows: Sequence[tuple[Any, ...]], *, update: Sequence[str] = ()) -> None:
    """Inserts `rows` (tuples in `columns` order). Rows whose primary key exists are left as they
    are, or, with `update`, have those columns replaced."""
    if rows:
        if type(rows[0]) is not tuple:
            # Named rows (NamedTuple): sqlite3 binds an exact tuple's items about a third faster.
            rows = [tuple(row) for row in rows]
        connection = await session.connection()
        await connection.exec_driver_sql(values.insert_sql(table, columns, update), rows)
