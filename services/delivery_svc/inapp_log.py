"""Reading the in-app event log: one page of some users' events after a position, through the
event_users index, and whether pruning took any event the page should have held. Both the
fan-out and a subscription catching up read it this way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.delivery.v1 import delivery_pb2
from services.delivery_svc import convert, store
from services.kit.db import transaction

PAGE = 500  # events read per page
WINDOW = 50_000  # positions one page spans at most, which bounds the database's sort


@dataclass(frozen=True, slots=True)
class Page:
    events: list[delivery_pb2.Event]  # in sequence order
    through: int  # the position read up to: the next page starts after it
    resumable: int  # the lowest position after which every event is still kept (store.LogBounds)
    pruned: bool  # an event after the page's start was pruned before it could be read


async def read_page(sessions: async_sessionmaker[AsyncSession], user_ids: Sequence[str], after: int, upto: int,
                    limit: int = PAGE, window: int = WINDOW) -> Page:
    """The events for one of `user_ids` after `after`, up to `upto` (at most `limit`, across at
    most `window` positions)."""
    through = min(upto, after + window)
    async with transaction(sessions) as session:
        positions = await store.positions_for_users(session, user_ids, after, through, limit)
        rows = await store.events_at(session, positions)
        # After the read: pruning that took anything the read should have found is visible here.
        bounds = await store.log_bounds(session)
    if len(positions) == limit:
        through = positions[-1]
    # A position without its event: the event was pruned after the index row was read (or its row
    # outlived it until retention's next round, see store.forget_in_app_rows).
    pruned = after < bounds.resumable or len(rows) < len(positions)
    return Page([convert.event(row) for row in rows], through, bounds.resumable, pruned)
