"""Background sizes of filter and all-users segments (DESIGN §4: computed in the background).

Writes that can change a computed size (users or channels upserted, imported or deleted; a
segment created or its filter changed) flag the affected segments `size_dirty` in their own
transaction and poke this worker. The worker waits a short debounce, then recounts each
flagged segment: it clears the flag first, so a change made during the count flags it again.
A recount that fails (or is interrupted by shutdown) flags its segment again, so it is
retried on the next round (or at the next start) instead of leaving the size stale until
something else changes. (Clearing the flag in the transaction that writes the size would
also do, but on SQLite it would hold the write lock for the whole count and stall writers.)
After each round it rests in proportion to the round's cost, so a long import is not slowed
down by recounting a million users after every chunk.

Replicas (PostgreSQL) recount one at a time (an advisory lock per round): two counting one
segment at once could write the older count last and leave it stale. A replica that finds the
turn taken tries again after its rest, so the segments its own writes flagged are counted even
when the other replica's round had already read the flags.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.kit.advisory import lock_key, one_replica_at_a_time
from services.kit.db import transaction
from services.kit.errors import InvalidArgument
from services.segment_svc import store
from services.segment_svc.filters import audience_condition

log = logging.getLogger("herald.segment.sizes")

LOCK_KEY = lock_key("sz")  # the recount's turn among replicas


class SizeWorker:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, debounce_s: float = 0.2,
                 min_rest_s: float = 0.5) -> None:
        self._sessions = sessions
        self._debounce_s = debounce_s
        self._min_rest_s = min_rest_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._unflagged: set[str] = set()  # claimed, not counted, and flagging them again failed

    def start(self) -> None:
        self._wake.set()  # segments left dirty by a previous run are counted at start
        self._task = asyncio.create_task(self._run(), name="segment-sizes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def poke(self) -> None:
        """Something changed: recount the dirty segments soon."""
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._debounce_s)
            self._wake.clear()
            started = loop.time()
            try:
                complete = await self.recount_dirty()
            except Exception:  # noqa: BLE001 — keep the worker alive; retry on the next round
                log.exception("segment size recount failed")
                complete = False
            if not complete:
                self._wake.set()
            await asyncio.sleep(max(self._min_rest_s, loop.time() - started))

    async def recount_dirty(self) -> bool:
        """Recounts the flagged segments; False when some recount failed (they stay flagged) or
        another replica is recounting (this one looks again after its rest)."""
        async with one_replica_at_a_time(self._sessions, LOCK_KEY) as turn:
            return turn and await self._recount_dirty()

    async def _recount_dirty(self) -> bool:
        await self._flag_again(set(self._unflagged))
        async with transaction(self._sessions) as session:
            dirty = await store.dirty_segments(session)
        complete = True
        for segment in dirty:
            async with transaction(self._sessions) as session:
                if not await store.claim_dirty(session, segment.id):
                    continue
            try:
                async with transaction(self._sessions) as session:
                    size = await _count(session, segment)
                    await store.set_size(session, segment.id, size)
            except Exception:  # noqa: BLE001 — e.g. "database is locked": count it again next round
                log.exception("segment size recount failed", extra={"segment_id": segment.id})
                await self._flag_again({segment.id})
                complete = False
            except asyncio.CancelledError:  # shutting down: the next start counts it
                await self._flag_again({segment.id})
                raise
        return complete

    async def _flag_again(self, segment_ids: set[str]) -> None:
        """Flags claimed-but-uncounted segments dirty again; remembered for the next round if
        that fails too."""
        if not segment_ids:
            return
        self._unflagged |= segment_ids
        try:
            async with transaction(self._sessions) as session:
                await store.mark_segments_dirty(session, segment_ids)
        except Exception:  # noqa: BLE001 — the next round tries again
            log.exception("could not flag segments for a recount", extra={"segment_ids": sorted(segment_ids)})
            return
        self._unflagged -= segment_ids


async def _count(session: AsyncSession, segment: Row[Any]) -> int:
    table = store.users if segment.type == "user" else store.channels
    query = select(func.count()).select_from(table)
    if segment.filter is not None:
        try:
            query = query.where(audience_condition(segment.type, segment.filter))
        except InvalidArgument:
            log.warning("stored segment filter no longer compiles", extra={"segment_id": segment.id})
            return 0
    return int((await session.execute(query)).scalar_one())
