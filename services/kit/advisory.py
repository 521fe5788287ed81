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
- `while_holding(engine, key, work, retry_s=…)`: the turn for as long as the replica keeps it, for
  work that runs without end (a destination's event dispatch): a session-level lock
  (`pg_try_advisory_lock`) on a connection of its own, which the server releases when that
  connection dies (the replica killed), so another replica, trying every `retry_s`, takes over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

log = logging.getLogger("herald.advisory")

# How long a holder's connection check may take before the connection counts as lost: generous,
# as giving the turn up while alive makes two replicas do the work for a moment.
CHECK_TIMEOUT_S = 30.0


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


async def while_holding(engine: AsyncEngine, key: int, work: Callable[[], Awaitable[None]], *, retry_s: float,
                        what: str) -> None:
    """Runs `work` while this replica holds the session-level advisory lock `key`, until cancelled.
    Without the lock it tries again every `retry_s`. Holding it, it checks its connection as
    often: a connection lost (the database restarted) may have lost the lock, so `work` is
    cancelled and the lock taken again before it runs again (from its durable state). On SQLite
    (one replica) `work` simply runs."""
    if engine.dialect.name != "postgresql":
        await work()
        return
    while True:
        try:
            async with engine.connect() as connection:
                try:
                    if await _try_session_lock(connection, key):
                        log.info("took the turn", extra={"job": what})
                        await _work_while_connected(connection, work, retry_s)
                finally:
                    # Never back to the pool with the lock held: closing the session releases it.
                    await connection.invalidate()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 — the database away: try again later
            log.warning("the turn was lost or could not be asked for", extra={"job": what}, exc_info=True)
        await asyncio.sleep(retry_s)


async def _try_session_lock(connection: AsyncConnection, key: int) -> bool:
    got = bool(await connection.scalar(select(func.pg_try_advisory_lock(key))))
    await connection.commit()  # the lock outlives the transaction; the connection does not idle in one
    return got


async def _work_while_connected(connection: AsyncConnection, work: Callable[[], Awaitable[None]],
                                check_s: float) -> None:
    task = asyncio.ensure_future(work())
    try:
        while True:
            await asyncio.wait([task], timeout=check_s)
            if task.done():
                task.result()  # work ended (it runs forever unless it failed): raise its error
                return
            await asyncio.wait_for(connection.scalar(select(1)), CHECK_TIMEOUT_S)
            await connection.commit()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
