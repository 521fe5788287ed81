"""The sequencer: gives outbox events their `position`, the order in which readers (the dispatcher,
in-app subscribers) take them, and which clients see as `Event.sequence`.

Why not the autoincrement `sequence` itself: on PostgreSQL two batch transactions take sequence
values s1 < s2 and may commit s2 first; a reader that saw s2 and resumes "after s2" would never
see s1. So a batch writes its events without a position (no more work in its transaction than
before), and this one task, in its own short transactions, positions the committed events that
have none: in insertion order, above every position given before, in bulk (one UPDATE per batch
of up to SEQUENCE_BATCH). A position becomes visible together with every lower one, and every
later one is higher, so a reader resuming after P never skips an event that becomes visible
later; gaps are allowed. Within a campaign, campaign.completed / stopped are inserted only after
the delivery's last batch committed, so they are positioned after its message.new and
channel.created.

On SQLite, which has one writer at a time, the writers position their events as they write them
(store.insert_events), so this task only positions the rare events written without one there.

Replicas (PostgreSQL): every round holds a transaction advisory lock (`pg_try_advisory_xact_lock`);
a replica that does not get it skips the round, so two never position at once. The last
position lives in its own row (`event_sequencer`), so positions never restart, even once every
event is pruned.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.delivery_svc import store
from services.kit.advisory import lock_key, try_transaction_lock
from services.kit.db import transaction, write_transaction

log = logging.getLogger("herald.delivery.sequencer")

SEQUENCE_BATCH = 5000  # events positioned per transaction (bounds how long it holds SQLite's writer)
BUSY_POLL_S = 0.05  # how often to look for new events while events keep coming
IDLE_POLL_S = 0.5  # and once none came for IDLE_AFTER_S (a writer in this process wakes it at once)
IDLE_AFTER_S = 5.0
ERROR_BACKOFF_S = 1.0
LOCK_KEY = lock_key("sq")  # 0x6865_7261_6C64_7371, as before


class Positions:
    """The last position this process knows to be committed, and a wait for the next ones.
    In-process only: on PostgreSQL another replica may be the one positioning, so a waiter that
    times out reads the database again."""

    def __init__(self) -> None:
        self.last = 0
        self._moved = asyncio.Event()

    def advance(self, last: int) -> None:
        if last > self.last:
            self.last = last
            moved, self._moved = self._moved, asyncio.Event()
            moved.set()

    async def wait_past(self, position: int, timeout_s: float) -> bool:
        """Waits until a position after `position` is committed; False after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.last <= position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._moved.wait(), remaining)
            except TimeoutError:
                return False
        return True


class Sequencer:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], positions: Positions, *,
                 batch: int = SEQUENCE_BATCH) -> None:
        self.sessions = sessions
        self.positions = positions
        self.batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Events were committed in this process: position them now rather than at the next poll."""
        self._wake.set()

    async def sequence_once(self) -> int:
        """Positions up to one batch of committed events; returns how many."""
        async with transaction(self.sessions) as session:
            if not await store.any_unpositioned(session):
                # On SQLite the writers position their events themselves (store.insert_events).
                self.positions.advance(await store.last_position(session))
                return 0
        async with write_transaction(self.sessions) as session:
            if not await try_transaction_lock(session, LOCK_KEY):
                return 0
            before = await store.claim_sequencer(session)
            count, last = await store.position_events(session, before, self.batch)
            # In the same transaction, so that no position is visible before in-app readers can find it.
            await store.index_in_app_events(session, before, last)
        self.positions.advance(last)
        return count

    async def load(self) -> None:
        """Learns the last position committed (at start, before `run`)."""
        async with transaction(self.sessions) as session:
            self.positions.advance(await store.last_position(session))

    async def run(self) -> None:
        busy_until = 0.0
        while True:
            self._wake.clear()  # before the round: a wake during it makes the next one
            try:
                count = await self.sequence_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 — the loop must outlive a failed round (database restarting)
                log.exception("positioning events failed")
                await asyncio.sleep(ERROR_BACKOFF_S)
                continue
            now = time.monotonic()
            if count:
                busy_until = now + IDLE_AFTER_S
                if count >= self.batch:
                    continue
            try:
                await asyncio.wait_for(self._wake.wait(), BUSY_POLL_S if now < busy_until else IDLE_POLL_S)
            except TimeoutError:
                pass
