"""Rules of SubscribeEvents: the in-app events (channel.created, message.new) of up to 1,000
users, in sequence order, each once, from after a sequence, then live until the client leaves.

A subscription reads from the database (through the event_users index, in pages) until it has
reached the fan-out's tail, then joins the fan-out (fanout.py) and takes what it hands out.
Dropped there for reading too slowly, it reads from the database again after the last event
it sent. Either way it sends an event only past the last one it sent: once each, in order.

Resuming: `after_sequence` 0 starts at the log's head (only new events); N > 0 continues after
N. Sequences have gaps, and the pruner removes the oldest events first, so with K the oldest
position kept, every event after N is still there exactly when N ≥ K - 1 (when nothing is
kept, when N ≥ the last position given out). An older N is SEQUENCE_EXPIRED: events after it
were pruned, or may have been (what lay between N and K is gone, gaps and events alike). An N
the log never reached is SEQUENCE_AHEAD. A subscription reading old pages checks this again
after each page, so pruning that overtakes a slow reader ends its stream instead of skipping;
so does an event of its users found pruned out of order (an index row whose event is gone).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.delivery.v1 import delivery_pb2
from services.delivery_svc import reasons, store
from services.delivery_svc.fanout import Fanout
from services.delivery_svc.inapp_log import PAGE, WINDOW, read_page
from services.kit.errors import OutOfRange, Violations
from services.kit.db import transaction
from services.kit.fields import check_id_list
from services.kit.limits import MAX_SUBSCRIBED_USERS

# SubscribeEvents' response header: the sequence the stream delivers every event after.
AFTER_SEQUENCE_HEADER = "herald-after-sequence"


def _validated(user_ids: Sequence[str], after_sequence: int,
               types: Sequence[str]) -> tuple[list[str], list[str]]:
    """The request's users and types, each once; INVALID_ARGUMENT naming each bad field."""
    v = Violations()
    check_id_list(v, user_ids, "user_ids", limit=MAX_SUBSCRIBED_USERS)
    v.check(after_sequence >= 0, "after_sequence", "must be 0 (only new events) or a sequence received before")
    for i, type_ in enumerate(types):
        if type_ not in store.IN_APP_TYPES:
            v.add(f"types[{i}]", f"unknown type {type_!r}: use {' or '.join(store.IN_APP_TYPES)} "
                                 "(campaign events are for webhooks only)")
            break
    v.raise_if_any()
    return list(dict.fromkeys(user_ids)), list(dict.fromkeys(types))


def _expired(after: int, resumable: int) -> OutOfRange:
    return OutOfRange(f"after_sequence {after} is older than the events kept: resume after {resumable} or later, "
                      "or subscribe with 0 for new events only", reason=reasons.SEQUENCE_EXPIRED,
                      metadata={"oldest_after_sequence": str(resumable)})


@dataclass(frozen=True, slots=True)
class Subscription:
    users: list[str]
    types: list[str]  # empty: all
    start: int  # every event for `users` after this position comes, in order


class Subscriptions:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], fanout: Fanout, *, page: int = PAGE,
                 window: int = WINDOW) -> None:
        self.sessions = sessions
        self.fanout = fanout
        self.page = page
        self.window = window

    async def open(self, user_ids: Sequence[str], after_sequence: int, types: Sequence[str]) -> Subscription:
        """Checks the request and fixes where the subscription starts."""
        users, wanted = _validated(user_ids, after_sequence, types)
        return Subscription(users, wanted, await self._start(after_sequence))

    async def events(self, subscription: Subscription) -> AsyncIterator[delivery_pb2.Event]:
        """Every event of the subscription after its start, then live, until the caller stops."""
        users, types, last = subscription.users, subscription.types, subscription.start
        while True:
            while last < self.fanout.tail:
                events, last_read = await self._page(users, types, last, self.fanout.tail)
                for event in events:
                    yield event
                last = last_read
            follower = await self.fanout.join(users, types, last)
            if follower is None:
                continue  # the fan-out moved on meanwhile: read up to its new tail
            try:
                while (event := await follower.next()) is not None:
                    if event.sequence > last:
                        last = event.sequence
                        yield event
            finally:
                self.fanout.leave(follower)

    async def _start(self, after_sequence: int) -> int:
        """The position to read after: the head for 0, else `after_sequence` once it is in range."""
        async with transaction(self.sessions) as session:
            bounds = await store.log_bounds(session)
        if after_sequence == 0:
            return bounds.last_given
        if after_sequence > bounds.last_given:
            raise OutOfRange(f"after_sequence {after_sequence} was never given out (the last sequence is "
                             f"{bounds.last_given}); subscribe with 0 for new events only",
                             reason=reasons.SEQUENCE_AHEAD)
        if after_sequence < bounds.resumable:
            raise _expired(after_sequence, bounds.resumable)
        return after_sequence

    async def _page(self, users: list[str], types: list[str], after: int,
                    tail: int) -> tuple[list[delivery_pb2.Event], int]:
        """The users' events of `types` (empty: all) of one page after `after`, up to `tail`, and
        the position read up to; SEQUENCE_EXPIRED when pruning took any it should hold."""
        page = await read_page(self.sessions, users, after, tail, self.page, self.window)
        if page.pruned:
            raise _expired(after, page.resumable)
        return [event for event in page.events if not types or event.type in types], page.through
