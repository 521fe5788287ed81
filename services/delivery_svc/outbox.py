"""The event log as readers see it: positioned events in position order (`Event.sequence` is the
position), and a wait for new ones. Readers never look at events the sequencer has not
positioned yet, so resuming after a sequence never skips one (see sequencer.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.delivery.v1 import delivery_pb2
from services.delivery_svc import convert, store
from services.delivery_svc.sequencer import Sequencer
from services.kit.db import transaction

# How long PublishEvent waits for its event's position before answering without it (sequence 0):
# the sequencer positions new events within a poll, on whichever replica holds its lock.
POSITION_WAIT_S = 2.0
# A waiter re-reads the database this often: another replica may be the one positioning.
REREAD_S = 0.5


class Outbox:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], sequencer: Sequencer) -> None:
        self.sessions = sessions
        self.sequencer = sequencer
        self.positions = sequencer.positions

    async def read(self, after: int, limit: int, *, user_ids: Sequence[str] = (),
                   types: Sequence[str] = ()) -> list[delivery_pb2.Event]:
        """Up to `limit` events after sequence `after`, in order; only those for one of
        `user_ids` and of one of `types` when given."""
        async with transaction(self.sessions) as session:
            rows = await store.events_after(session, after, limit, user_ids=user_ids, types=types)
        return [convert.event(row) for row in rows]

    async def wait_for_more(self, after: int, timeout_s: float) -> None:
        """Returns once this process positioned an event after `after`, or after at most
        `timeout_s`, never more than REREAD_S (another replica may be the one positioning):
        the caller reads again either way."""
        await self.positions.wait_past(after, min(timeout_s, REREAD_S))

    async def positioned(self, event_id: str) -> delivery_pb2.Event:
        """The stored event, once the sequencer positioned it (at most POSITION_WAIT_S; past it,
        with sequence 0)."""
        self.sequencer.wake()
        deadline = time.monotonic() + POSITION_WAIT_S
        while True:
            last = self.positions.last
            async with transaction(self.sessions) as session:
                row = await store.get_event(session, event_id)
            remaining = deadline - time.monotonic()
            if row.position is not None or remaining <= 0:
                return convert.event(row)
            await self.positions.wait_past(last, min(remaining, REREAD_S))
