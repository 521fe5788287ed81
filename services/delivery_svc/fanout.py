"""The live end of SubscribeEvents: one reader follows the head of the event log and hands each new
in-app event to the followers of its users, so that thousands of live subscribers cost one read
per sequencer round instead of one each. A follower whose queue is full (its client reads slower
than events come) is dropped and catches up from the database on its own (subscriptions.py):
memory stays bounded however slow a client is."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.delivery.v1 import delivery_pb2
from services.delivery_svc import store
from services.delivery_svc.inapp_log import PAGE, WINDOW, read_page
from services.delivery_svc.sequencer import Positions
from services.kit.db import transaction

log = logging.getLogger("herald.delivery.fanout")

QUEUE = 1000  # events a follower may have waiting before it is dropped
# Without a wake from this process's sequencer the head is read this often: another replica
# may be the one positioning.
REREAD_S = 0.5
# Rounds are at least this far apart, so that a busy log costs at most ten reads a second
# (while a campaign is sent the sequencer positions a batch every few tens of milliseconds).
ROUND_INTERVAL_S = 0.1
ERROR_BACKOFF_S = 1.0


class Follower:
    """A live subscription as the fan-out sees it: its users, its types (empty: all), its queue."""

    def __init__(self, users: frozenset[str], types: frozenset[str], queue_size: int) -> None:
        self.users = users
        self.types = types
        # None: the fan-out dropped it (to wake it if it waits).
        self.queue: asyncio.Queue[delivery_pb2.Event | None] = asyncio.Queue(queue_size)
        self.dropped = False

    def takes(self, event: delivery_pb2.Event) -> bool:
        return not self.types or event.type in self.types

    async def next(self) -> delivery_pb2.Event | None:
        """The next event handed to it; None once it was dropped and has taken what was queued."""
        if self.dropped and self.queue.empty():
            return None
        return await self.queue.get()


class Fanout:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], positions: Positions, *, page: int = PAGE,
                 window: int = WINDOW, queue_size: int = QUEUE) -> None:
        self.sessions = sessions
        self.positions = positions
        self.page = page
        self.window = window
        self.queue_size = queue_size
        # Every event at or before `tail` was handed to the followers there were at the time.
        self.tail = 0
        self.dropped = 0  # followers dropped for a full queue so far
        self._followers: set[Follower] = set()
        self._by_user: dict[str, set[Follower]] = {}
        self._turn = asyncio.Lock()  # held while a page is read and handed out; a join waits for it
        self._followed = asyncio.Event()  # set while anyone follows

    async def join(self, users: Collection[str], types: Collection[str], after: int) -> Follower | None:
        """A follower that will be handed every event after `after` for `users`; None when the
        fan-out is already past `after`: the caller reads up to `tail` itself, then joins again."""
        async with self._turn:
            if not self._followers:
                # With no follower the tail promises nothing to anyone: it moves up to the head this
                # process knows (committed), so that the fan-out reads only new events and a joiner
                # behind it catches up by itself.
                self.tail = max(self.tail, self.positions.last)
            if after < self.tail:
                return None
            follower = Follower(frozenset(users), frozenset(types), self.queue_size)
            self._followers.add(follower)
            for user in follower.users:
                self._by_user.setdefault(user, set()).add(follower)
            self._followed.set()
            return follower

    def leave(self, follower: Follower) -> None:
        self._followers.discard(follower)
        for user in follower.users:
            followers = self._by_user.get(user)
            if followers is not None:
                followers.discard(follower)
                if not followers:
                    del self._by_user[user]
        if not self._followers:
            self._followed.clear()

    def following(self) -> int:
        """How many subscriptions follow live."""
        return len(self._followers)

    async def run(self) -> None:
        while True:
            await self._followed.wait()
            woken = await self.positions.wait_past(self.tail, REREAD_S)
            try:
                # Woken, this process's sequencer says where the head is; else ask the database.
                await self.follow(self.positions.last if woken else None)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 — the loop must outlive a failed read (database restarting)
                log.exception("following the event log failed")
                await asyncio.sleep(ERROR_BACKOFF_S)
            await asyncio.sleep(ROUND_INTERVAL_S)

    async def follow(self, head: int | None = None) -> None:
        """Hands out every event up to `head` (committed; None: the database's), page by page, to the
        followers of its users."""
        if head is None:
            async with transaction(self.sessions) as session:
                head = (await store.log_bounds(session)).last_given
        while self._followers and self.tail < head:
            async with self._turn:
                await self._hand_out_page(head)

    async def _hand_out_page(self, head: int) -> None:
        page = await read_page(self.sessions, list(self._by_user), self.tail, head, self.page, self.window)
        if page.pruned:
            # Pruning overtook the fan-out: each follower finds out from its own read (OUT_OF_RANGE).
            for follower in list(self._followers):
                self._drop(follower)
            return
        for event in page.events:
            self._hand_out(event)
        self.tail = page.through

    def _hand_out(self, event: delivery_pb2.Event) -> None:
        receivers: set[Follower] = set()
        for user in event.user_ids:
            receivers.update(self._by_user.get(user, ()))
        for follower in receivers:
            if not follower.takes(event):
                continue
            try:
                follower.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(follower)

    def _drop(self, follower: Follower) -> None:
        follower.dropped = True
        self.dropped += 1
        self.leave(follower)
        if not follower.queue.full():
            follower.queue.put_nowait(None)  # it may be waiting for its next event
