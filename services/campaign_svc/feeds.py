"""In-process fan-out of campaign changes to WatchCampaign callers.

One `Feed` per watched campaign holds its latest state; whoever changes the campaign in this
process (a delivery follower, Start/Stop/Update) publishes into it, and every watcher reads
from it. So a thousand watchers of one campaign cost one upstream WatchDelivery.

Cadence (DESIGN §5): the current state at once; then changes coalesced to at most one update
per WATCH_MIN_INTERVAL_S, and the state again at least every WATCH_MAX_INTERVAL_S while
sending; the terminal state last, then the stream ends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from herald.campaign.v1 import campaign_pb2
from services.campaign_svc import reasons
from services.kit.errors import NotFound
from services.kit.limits import WATCH_MAX_INTERVAL_S, WATCH_MIN_INTERVAL_S

log = logging.getLogger("herald.campaign")

TERMINAL = (campaign_pb2.CAMPAIGN_STATUS_COMPLETED, campaign_pb2.CAMPAIGN_STATUS_STOPPED)


class Feed:
    def __init__(self) -> None:
        self.latest: campaign_pb2.Campaign | None = None
        self.version = 0
        self.deleted = False
        self.watchers = 0
        self._changed = asyncio.Event()

    def publish(self, campaign: campaign_pb2.Campaign | None) -> None:
        # A terminal state is final: a late, older update must not replace it.
        if self.latest is not None and self.latest.status in TERMINAL and (
                campaign is None or campaign.status not in TERMINAL):
            return
        if campaign is None:
            self.deleted = True
        else:
            self.latest = campaign
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed_since(self, version: int, timeout: float) -> bool:
        if self.version != version:
            return True
        waiter = self._changed
        try:
            await asyncio.wait_for(waiter.wait(), timeout)
        except TimeoutError:
            return self.version != version
        return True


Loader = Callable[[str], Awaitable[campaign_pb2.Campaign | None]]
# The stored campaigns' (status, updated_at) by id; those that do not exist are left out.
Stamper = Callable[[list[str]], Awaitable[dict[str, tuple[int, dt.datetime]]]]


class Feeds:
    """The feeds of the campaigns watched in this process."""

    def __init__(self, load: Loader, on_sending: Callable[[str], None], stamps: Stamper) -> None:
        self._feeds: dict[str, Feed] = {}
        self._load = load  # reads the stored campaign (None when it does not exist)
        self._stamps = stamps  # reads whether they changed
        self._on_sending = on_sending  # makes sure an in-progress campaign is followed here

    def publish(self, campaign: campaign_pb2.Campaign) -> None:
        feed = self._feeds.get(campaign.id)
        if feed is not None:
            feed.publish(campaign)

    def publish_deleted(self, campaign_id: str) -> None:
        feed = self._feeds.get(campaign_id)
        if feed is not None:
            feed.publish(None)

    def watcher_count(self, campaign_id: str) -> int:
        feed = self._feeds.get(campaign_id)
        return feed.watchers if feed else 0

    async def watch(self, campaign_id: str) -> AsyncIterator[campaign_pb2.Campaign]:
        feed = self._feeds.setdefault(campaign_id, Feed())
        feed.watchers += 1
        try:
            async for campaign in self._relay(campaign_id, feed):
                yield campaign
        finally:
            feed.watchers -= 1
            if feed.watchers == 0 and self._feeds.get(campaign_id) is feed:
                del self._feeds[campaign_id]

    async def _relay(self, campaign_id: str, feed: Feed) -> AsyncIterator[campaign_pb2.Campaign]:
        loop = asyncio.get_running_loop()
        if feed.latest is None:
            stored = await self._load(campaign_id)
            if stored is None:
                raise NotFound(f"campaign {campaign_id} does not exist", reason=reasons.CAMPAIGN_NOT_FOUND)
            if feed.latest is None:
                feed.publish(stored)
        assert feed.latest is not None  # set now, and never unset (a deletion marks `deleted`)
        if feed.latest.status == campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS:
            self._on_sending(campaign_id)
        while True:
            if feed.deleted:
                raise NotFound(f"campaign {campaign_id} was deleted", reason=reasons.CAMPAIGN_DELETED)
            version, current = feed.version, feed.latest
            yield current
            if current.status in TERMINAL:
                return
            sent_at = loop.time()
            await self._next_change(campaign_id, feed, version, current)
            # Coalesce: whatever arrived within the interval goes out as one update.
            await asyncio.sleep(max(0.0, sent_at + WATCH_MIN_INTERVAL_S - loop.time()))

    async def _next_change(self, campaign_id: str, feed: Feed, version: int,
                           current: campaign_pb2.Campaign) -> None:
        """Returns when there is something to send: a change, or a heartbeat while sending. A
        draft or scheduled campaign changed by another instance is published by `watch_stored`."""
        while not await feed.changed_since(version, WATCH_MAX_INTERVAL_S):
            if current.status == campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS:
                self._on_sending(campaign_id)
                return  # heartbeat

    async def watch_stored(self) -> None:
        """Forever: each WATCH_MAX_INTERVAL_S, one look at the stored status and updated_at of
        every watched campaign that is not sending (another instance may start, change or delete
        it), reading the whole of those that changed. One query however many are watched."""
        while True:
            await asyncio.sleep(WATCH_MAX_INTERVAL_S)
            try:
                await self.look_at_stored()
            except Exception:  # noqa: BLE001 — the next look may do better (the database restarting)
                log.exception("looking at watched campaigns failed")

    async def look_at_stored(self) -> None:
        idle = {campaign_id: feed.latest for campaign_id, feed in self._feeds.items() if feed.latest is not None
                and not feed.deleted and feed.latest.status not in (campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS,
                                                                    *TERMINAL)}
        if not idle:
            return
        stamps = await self._stamps(list(idle))
        for campaign_id, latest in idle.items():
            stamp = stamps.get(campaign_id)
            if stamp == (latest.status, latest.updated_at.ToDatetime(dt.timezone.utc)):
                continue
            stored = await self._load(campaign_id) if stamp is not None else None
            feed = self._feeds.get(campaign_id)
            if feed is None or feed.latest is not latest:
                continue  # no longer watched, or published meanwhile
            if stored is None:
                feed.publish(None)
            elif stored.status != latest.status or stored.updated_at != latest.updated_at:
                feed.publish(stored)
                if stored.status == campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS:
                    self._on_sending(campaign_id)
