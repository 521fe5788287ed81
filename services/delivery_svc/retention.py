"""Retention of the event log and the dead letters (DESIGN §10.1), in the background, in bounded
batches: an event goes once older than HERALD_EVENT_RETENTION_H and passed by every shard of
every destination (the dispatcher dead-letters what is still undelivered by then, so nothing is
dropped silently); a dead letter goes once older than HERALD_DEAD_LETTER_RETENTION_H. Replicas (PostgreSQL) prune one
at a time (an advisory lock per pass); one that finds the turn taken skips its pass."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.delivery_svc import store
from services.kit.advisory import lock_key, one_replica_at_a_time
from services.kit.db import transaction, utcnow, write_transaction

log = logging.getLogger("herald.delivery.retention")

PRUNE_BATCH = 5000  # rows deleted per transaction (bounds how long it holds SQLite's writer)
INTERVAL_S = 60.0
LOCK_KEY = lock_key("rt")  # a pass's turn among replicas


class Retention:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], destinations: Sequence[str], *,
                 event_retention_h: float, dead_letter_retention_h: float, interval_s: float = INTERVAL_S) -> None:
        self.sessions = sessions
        self.destinations = list(destinations)
        self.event_retention = dt.timedelta(hours=event_retention_h)
        self.dead_letter_retention = dt.timedelta(hours=dead_letter_retention_h)
        self.interval_s = interval_s

    async def prune_once(self) -> tuple[int, int] | None:
        """Prunes what is due; returns (events, dead letters) deleted, or None when another
        replica is pruning."""
        async with one_replica_at_a_time(self.sessions, LOCK_KEY) as turn:
            return await self._prune() if turn else None

    async def _prune(self) -> tuple[int, int]:
        now = utcnow()
        async with transaction(self.sessions) as session:
            positions = await store.dispatch_positions_of(session, self.destinations)
        events = 0
        # Each destination's slowest shard; a destination not started yet holds everything.
        if len(positions) == len(self.destinations):
            passed = min(positions.values()) if positions else None
            events = await self._in_batches(lambda s: store.prune_events(s, passed, now - self.event_retention,
                                                                         PRUNE_BATCH))
        # The in-app rows of the events pruned (now, or before a restart).
        await self._in_batches(lambda s: store.forget_in_app_rows(s, PRUNE_BATCH))
        letters = await self._in_batches(lambda s: store.prune_dead_letters(s, now - self.dead_letter_retention,
                                                                            PRUNE_BATCH))
        if events or letters:
            log.info("pruned", extra={"events": events, "dead_letters": letters})
        return events, letters

    async def _in_batches(self, prune: Callable[[AsyncSession], Awaitable[int]]) -> int:
        total = 0
        while True:
            async with write_transaction(self.sessions) as session:
                deleted = await prune(session)
            total += deleted
            if deleted < PRUNE_BATCH:
                return total
            await asyncio.sleep(0)  # let the sending path have the database in between

    async def run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 — tried again next round
                log.exception("pruning failed")
            await asyncio.sleep(self.interval_s)
