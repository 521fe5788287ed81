"""Work that one replica at a time does (DESIGN §10.4: background work runs once).

PostgreSQL advisory locks, keyed by job: replicas sharing a database take turns at a job,
and one that finds the turn taken skips its pass (the holder is doing the work). Transaction
locks (`pg_try_advisory_xact_lock`) only: PostgreSQL releases them at commit, rollback or a lost
connection, so a replica that dies never keeps a job from the others. SQLite has one replica,
whose turn it always is.

- `try_transaction_lock(session, key)`: the turn for the rest of the session's transaction,
  for a pass that is one transaction (the event sequencer).
- `one_replica_at_a_time(sessions, key)`: the turn for a block that opens transactions of its
  own (a size recount, a retention pass): held by a transaction on a connection of its own,
  which does nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker


def lock_key(tag: str) -> int:
    """The advisory lock key of a job: "herald" in ASCII, then a two-letter tag ("sq" →
    0x6865_7261_6C64_7371). Migrations use "herald" then the service's number (kit.migrate)."""
    raw = tag.encode("ascii")
    if len(raw) != 2 or not raw.isalpha():
        raise ValueError(f"a lock tag is two ASCII letters, not {tag!r}")
    return int.from_bytes(b"herald" + raw, "big")


async def try_transaction_lock(session: AsyncSession, key: int) -> bool:
    """Takes the job's turn for the rest of the session's transaction; False when another
    replica has it (PostgreSQL). Always True on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(await session.scalar(select(func.pg_try_advisory_xact_lock(key))))


@asynccontextmanager
async def one_replica_at_a_time(sessions: async_sessionmaker[AsyncSession], key: int) -> AsyncIterator[bool]:
    """Yields True when this replica has the job's turn for the block, False when another
    replica has it (skip the pass: the other one is doing it). Always True on SQLite."""
    engine: AsyncEngine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        yield True
        return
    async with engine.connect() as connection, connection.begin():
        yield bool(await connection.scalar(select(func.pg_try_advisory_xact_lock(key))))
