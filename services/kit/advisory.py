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
- `SharedTurns(engine, groups, work, presence=…, retry_s=…)`: turns at many jobs that run without
  end (the shards of each destination's event dispatch), for as long as the replica keeps them,
  shared fairly among the replicas alive: session-level locks (`pg_try_advisory_lock`) on one
  connection of the replica's own, which the server releases when that connection dies (the
  replica killed), so the others, looking every `retry_s`, take its jobs over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

log = logging.getLogger("herald.advisory")

# How long a holder's connection check may take before the connection counts as lost: generous,
# as giving the turn up while alive makes two replicas do the work for a moment.
CHECK_TIMEOUT_S = 30.0


def lock_key(tag: str) -> int:
    """The advisory lock key of a job: "herald" in ASCII, then a two-letter tag ("sq" →
    0x6865_7261_6C64_7371). Migrations use "herald" then the service's number (kit.migrate)."""
    return int.from_bytes(b"herald" + _tag(tag), "big")


def numbered_lock_key(tag: str, number: int) -> int:
    """The key of one of a kind of jobs (a destination's shard `number`): "he", the two-letter tag,
    "#", then the number in three bytes. Never one of lock_key's (their fifth byte is "l"), and
    the jobs of one tag share the key's upper half, which is how pg_locks shows them (`classid`)."""
    if not 0 <= number < 1 << 24:
        raise ValueError(f"a job number is in [0, 2**24), not {number}")
    return int.from_bytes(b"he" + _tag(tag) + b"#" + number.to_bytes(3, "big"), "big")


def _tag(tag: str) -> bytes:
    raw = tag.encode("ascii")
    if len(raw) != 2 or not raw.isalpha():
        raise ValueError(f"a lock tag is two ASCII letters, not {tag!r}")
    return raw


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


class SharedTurns:
    """Runs `work(key)` for every job whose turn this replica holds, the jobs shared fairly among
    the replicas alive (PostgreSQL; on SQLite, one replica, every work simply runs).

    Each job of `groups` (lists of keys: each destination's dispatch shards) is a session-level
    advisory lock on one connection of this replica's own, where the replica also holds
    `presence` (shared), so pg_locks tells which replicas are alive and what each holds. Every
    `retry_s`, in each group, a replica gives up what it holds beyond its share — more than
    ceil(jobs / replicas alive), or two more than the replica holding the fewest — and takes free
    jobs while it holds fewer than its share and no other replica holds fewer: the jobs spread
    over the replicas alive, and a dead replica's (its connection gone, its locks released by the
    server) pass to the others. A work is cancelled, and awaited, before its lock is given up. The
    connection is checked at every look: one lost (the database restarted) may have lost the
    locks, so every work is cancelled and the turns are taken again before they run again (from
    their durable state). A work that ends has failed: its error ends every turn here, and they are
    taken again after `retry_s`.
    """

    def __init__(self, engine: AsyncEngine, groups: Sequence[Sequence[int]], work: Callable[[int], Awaitable[None]],
                 *, presence: int, retry_s: float, what: str) -> None:
        self.engine = engine
        self.groups = [list(group) for group in groups]
        self.work = work
        self.presence = presence
        self.retry_s = retry_s
        self.what = what
        self.running: dict[int, asyncio.Task[None]] = {}

    async def run(self) -> None:
        if self.engine.dialect.name != "postgresql":
            await asyncio.gather(*(self.work(key) for group in self.groups for key in group))
            return
        while True:
            try:
                async with self.engine.connect() as connection:
                    try:
                        await self._hold(connection)
                    finally:
                        await self._stop(list(self.running))
                        # Never back to the pool with locks held: closing the session releases them.
                        await connection.invalidate()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 — the database away, or a work failed: take the turns again later
                log.warning("the turns were lost or could not be asked for", extra={"job": self.what}, exc_info=True)
            await asyncio.sleep(self.retry_s)

    async def _hold(self, connection: AsyncConnection) -> None:
        me = int(await connection.scalar(select(func.pg_backend_pid())) or 0)
        # Nobody takes the presence lock exclusively: the shared one is always granted.
        await connection.scalar(select(func.pg_try_advisory_lock_shared(self.presence)))
        while True:
            held = await asyncio.wait_for(_advisory_locks(connection), CHECK_TIMEOUT_S)
            alive = {pid for pid, keys in held.items() if self.presence in keys} | {me}
            for group in self.groups:
                await self._balance(connection, group, {pid: held.get(pid, set()) for pid in alive}, me)
            await connection.commit()  # the locks outlive the transaction; the connection does not idle in one
            await self._watch()

    async def _balance(self, connection: AsyncConnection, group: list[int], alive: dict[int, set[int]], me: int) -> None:
        """Gives up this replica's excess in `group`, or takes free jobs up to its share."""
        jobs = set(group)
        mine = sorted(key for key in self.running if key in jobs)
        share = -(-len(group) // len(alive))
        others = [len(keys & jobs) for pid, keys in alive.items() if pid != me]
        excess = len(mine) - share
        if others and len(mine) - min(others) >= 2:
            excess = max(excess, 1)
        if excess > 0:
            for key in mine[-excess:]:
                await self._give_up(connection, key)
            log.info("gave turns up", extra={"job": self.what, "turns": excess, "replicas": len(alive)})
            return
        if others and min(others) < len(mine):
            return  # a replica holding fewer takes the free ones first
        taken = set().union(*alive.values()) & jobs
        for key in group:
            if len(mine) >= share:
                return
            if key not in taken and await connection.scalar(select(func.pg_try_advisory_lock(key))):
                log.info("took a turn", extra={"job": self.what, "key": key})
                self.running[key] = asyncio.ensure_future(self.work(key))
                mine.append(key)

    async def _give_up(self, connection: AsyncConnection, key: int) -> None:
        await self._stop([key])
        await connection.scalar(select(func.pg_advisory_unlock(key)))

    async def _stop(self, keys: list[int]) -> None:
        tasks = [self.running.pop(key) for key in keys]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self) -> None:
        """Waits `retry_s`; a work that ended (it runs until cancelled unless it failed) raises."""
        if not self.running:
            await asyncio.sleep(self.retry_s)
            return
        done, _ = await asyncio.wait(list(self.running.values()), timeout=self.retry_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
        if done:
            raise RuntimeError(f"{self.what}: a work ended")


async def _advisory_locks(connection: AsyncConnection) -> dict[int, set[int]]:
    """The bigint advisory locks granted in this database, by backend pid (pg_locks shows a key's
    upper half as `classid`, its lower half as `objid`)."""
    rows = await connection.execute(text(
        "SELECT pid, classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"))
    held: dict[int, set[int]] = {}
    for pid, upper, lower in rows:
        key = upper << 32 | lower
        held.setdefault(pid, set()).add(key - (1 << 64) if key >= 1 << 63 else key)
    return held
