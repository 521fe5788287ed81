"""Sending a campaign: starting its delivery, following the delivery's progress, ending it.

- `count_audience` counts the recipients before a campaign moves to in_progress, so that it
  never shows in_progress without its recipients_total (DESIGN §10.2).
- `begin` / `begin_moved` hand the campaign snapshot, that count included, to
  `DeliveryService.StartDelivery` (idempotent by campaign id) and record `campaign.started`.
- One follower task per in-progress campaign in this process consumes `WatchDelivery`
  (reconnecting with backoff), persists status and stats, and publishes them to the feeds.
- `finish` makes the terminal transition once (a conditional UPDATE) with its event.
- `pause_running` pauses the delivery, then the campaign (`paused`, with campaign.paused); a
  follower that sees its delivery paused (the pause's caller died in between) pauses the campaign
  the same way. A resume moves the campaign back to in_progress with its delivery to be started
  again (`delivery_started` false) and campaign.resumed, then StartDelivery resumes the paused
  delivery with the campaign's snapshot as it is now; a crash in between leaves that to the
  follower, as for any start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import random
from collections.abc import AsyncIterator, Mapping

import grpc
from sqlalchemy.ext.asyncio import async_sessionmaker

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2
from services.campaign_svc import convert, events, reasons, store
from services.kit.clock import Clock
from services.campaign_svc.feeds import Feeds
from services.campaign_svc.store import Status
from services.campaign_svc.upstream import Upstream, delivery_refusal, is_outage
from services.kit import reasons as kit_reasons
from services.kit.db import transaction, write_transaction
from services.kit.errors import FailedPrecondition, HeraldError, ResourceExhausted, Unavailable
from services.kit.tracing import bind_campaign

log = logging.getLogger("herald.campaign.sending")

# Another instance (or this one after a restart) takes over starting a delivery when its
# claimer has not done so by then. Short, since StartDelivery is idempotent by campaign id: the
# lease only spares duplicate calls, and a start claimed just before a crash fires soon after.
START_LEASE_S = 3.0
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
# A follower stores its campaign's progress at most this often; the updates between reach this
# process's watchers from memory (the next one is stored: WatchDelivery sends one at least each
# second while sending, and the end always). Storing each of four updates a second made a
# hundred campaigns sending at once cost campaign_svc 400 write transactions a second.
PROGRESS_STORE_INTERVAL_S = 1.0

DELIVERY_TERMINAL = {campaign_pb2.CAMPAIGN_STATUS_COMPLETED: Status.COMPLETED,
                     campaign_pb2.CAMPAIGN_STATUS_STOPPED: Status.STOPPED}


class DeliveryRefused(Exception):
    """StartDelivery answered with an error that retrying will not fix."""

    def __init__(self, error: HeraldError, reason: campaign_pb2.StopReason) -> None:
        super().__init__(error.message)
        self.error = error
        self.reason = reason


class StoredProgress:
    """What a follower last stored of its campaign (the row as stored) and when (loop time)."""

    def __init__(self) -> None:
        self.row: Mapping | None = None
        self.at = -math.inf

    def holds(self, values: dict) -> bool:
        return self.row is not None and all(self.row[name] == value for name, value in values.items())


class Backoff:
    def __init__(self) -> None:
        self.delay = 0.0

    def reset(self) -> None:
        self.delay = 0.0

    async def sleep(self) -> None:
        self.delay = min(BACKOFF_MAX_S, max(BACKOFF_FIRST_S, self.delay * 2))
        await asyncio.sleep(self.delay * random.uniform(0.5, 1.0))


class Sending:
    def __init__(self, sessions: async_sessionmaker, upstream: Upstream, clock: Clock, feeds: Feeds,
                 publisher: events.Publisher, owner: str) -> None:
        self.sessions = sessions
        self.upstream = upstream
        self.clock = clock
        self.feeds = feeds
        self.publisher = publisher
        self.owner = owner  # this process's id, recorded when it claims a start
        self.followers: dict[str, asyncio.Task] = {}
        self.upstream_watches = 0  # WatchDelivery calls opened (observable in tests)
        self._begin_locks: dict[str, asyncio.Lock] = {}
        self._closing = False

    # --- followers ----------------------------------------------------------------------------

    def ensure_follower(self, campaign_id: str) -> None:
        """Follows the campaign's delivery in this process, unless it already is."""
        task = self.followers.get(campaign_id)
        if self._closing or (task is not None and not task.done()):
            return
        task = asyncio.create_task(self._follow(campaign_id), name=f"follow:{campaign_id}")
        self.followers[campaign_id] = task
        task.add_done_callback(lambda t: self._forget(campaign_id, t))

    def _forget(self, campaign_id: str, task: asyncio.Task) -> None:
        if self.followers.get(campaign_id) is task:
            del self.followers[campaign_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("follower failed", extra={"campaign_id": campaign_id}, exc_info=task.exception())

    async def close(self) -> None:
        self._closing = True
        tasks = list(self.followers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, campaign_id: str) -> None:
        bind_campaign(campaign_id)  # the follower's own task
        backoff = Backoff()
        while True:
            row = await self._load(campaign_id)
            if row is None or row["status"] != Status.IN_PROGRESS:
                if row is not None:
                    self.feeds.publish(convert.campaign(row))
                return
            if not row["delivery_started"]:
                if not self._may_start(row):
                    await backoff.sleep()
                    continue
                try:
                    if not await self.begin(campaign_id):
                        await backoff.sleep()
                        continue
                except DeliveryRefused:
                    return  # begin stopped the campaign
            if await self._watch(campaign_id, backoff):
                return
            await backoff.sleep()

    def _may_start(self, row: Mapping) -> bool:
        claimed_at = row["start_claimed_at"]
        return (row["start_owner"] == self.owner or claimed_at is None
                or self.clock.now() - claimed_at > dt.timedelta(seconds=START_LEASE_S))

    async def _watch(self, campaign_id: str, backoff: Backoff) -> bool:
        """Relays one WatchDelivery stream; True once the campaign reached its end."""
        self.upstream_watches += 1
        call = self.upstream.watch_delivery(campaign_id)
        stored = StoredProgress()
        try:
            async for response in call:
                backoff.reset()
                if await self.record(campaign_id, response.delivery, stored):
                    return True
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                # The delivery service does not know it (e.g. lost before StartDelivery landed).
                await self._mark(campaign_id, {"delivery_started": False})
            elif not is_outage(exc) and exc.code() != grpc.StatusCode.CANCELLED:
                log.warning("WatchDelivery failed", extra={"campaign_id": campaign_id, "code": str(exc.code())})
        finally:
            call.cancel()
        return False

    # --- start --------------------------------------------------------------------------------

    async def count_audience(self, row: Mapping) -> int:
        """The campaign's recipients, counted before it moves to in_progress (DESIGN §10.2);
        Unavailable or FailedPrecondition when the segment service cannot count them."""
        return await self.upstream.count_recipients(row["segment_ids"] or [], row["user_ids"] or [],
                                                    row["sender_id"])

    async def begin(self, campaign_id: str) -> bool:
        """Starts the delivery of an in-progress campaign, unless started already; False on an
        outage (retry later). A refusal (capacity, a rule the delivery service enforces) stops the
        campaign and raises DeliveryRefused."""
        async with self._begin_lock(campaign_id):
            row = await self._load(campaign_id)
            if row is None or row["status"] != Status.IN_PROGRESS or row["delivery_started"]:
                return True
            delivery = await self._start_delivery(row, undo=None)
            if delivery is None:
                return False
            await self._started(row, delivery)
            return True

    async def begin_resumed(self, campaign_id: str) -> Mapping | None:
        """Resumes the delivery of a campaign ResumeCampaign has just moved back to in_progress;
        the campaign as it is then (its follower resumes the delivery after an outage)."""
        await self.begin(campaign_id)
        self.ensure_follower(campaign_id)
        return await self._load(campaign_id)

    async def begin_moved(self, row: Mapping, *, undo: dict) -> Mapping | None:
        """Starts the delivery of a campaign StartCampaign has just moved to in_progress (`row`,
        as moved) and returns the campaign as it is then: as moved after an outage (its follower
        starts the delivery later), None when it stopped meanwhile. A refusal puts `undo` (the
        values before the move) back, so that the failed StartCampaign changed nothing, and
        raises DeliveryRefused."""
        async with self._begin_lock(row["id"]):
            delivery = await self._start_delivery(row, undo)
            if delivery is None:
                return row
            return await self._started(row, delivery)

    @contextlib.asynccontextmanager
    async def _begin_lock(self, campaign_id: str) -> AsyncIterator[None]:
        """One start at a time per campaign in this process (StartCampaign and its follower)."""
        lock = self._begin_locks.setdefault(campaign_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._begin_locks.get(campaign_id) is lock:
                del self._begin_locks[campaign_id]

    async def _start_delivery(self, row: Mapping, undo: dict | None) -> delivery_pb2.Delivery | None:
        """StartDelivery with the campaign's snapshot (its counted recipients_total included);
        None on an outage. A refusal stops the campaign, or puts `undo` back, and raises."""
        campaign_id = row["id"]
        try:
            return await self.upstream.start_delivery(convert.campaign(row))
        except grpc.aio.AioRpcError as exc:
            if is_outage(exc):
                log.warning("delivery service unavailable; will retry the start",
                            extra={"campaign_id": campaign_id})
                return None
            refused = _refusal(exc)
            if undo is None:
                await self.finish(campaign_id, Status.STOPPED, reason=refused.reason,
                                  message=refused.error.message)
            else:
                async with write_transaction(self.sessions, urgent=True) as session:
                    await store.transition(session, campaign_id, Status.IN_PROGRESS, undo)
            raise refused from None

    async def _started(self, row: Mapping, delivery: delivery_pb2.Delivery) -> Mapping | None:
        """Records the started delivery with campaign.started and returns the campaign as it is
        now; None when it stopped while StartDelivery was on its way (what that started is
        stopped too)."""
        campaign_id = row["id"]
        values = {"delivery_started": True, **convert.stats_values(delivery.stats)}
        async with write_transaction(self.sessions, urgent=True) as session:
            marked = await store.transition(session, campaign_id, Status.IN_PROGRESS, values)
            if marked:
                row = {**row, **values}
                if not row["pauses"]:  # a resumed delivery had its campaign.resumed
                    await events.record(session, row, events.STARTED, self.clock)
        if not marked:
            await self._stop_quietly(campaign_id)
            return None
        self.publisher.wake()
        self.feeds.publish(convert.campaign(row))
        return row

    async def _stop_quietly(self, campaign_id: str) -> None:
        try:
            await self.upstream.stop_delivery(campaign_id, campaign_pb2.STOP_REASON_REQUESTED)
        except grpc.aio.AioRpcError as exc:
            log.warning("could not stop an orphaned delivery", extra={"campaign_id": campaign_id,
                                                                       "code": str(exc.code())})

    # --- progress and end ---------------------------------------------------------------------

    async def record(self, campaign_id: str, delivery: delivery_pb2.Delivery, stored: StoredProgress) -> bool:
        """Persists one delivery update (progress at most each PROGRESS_STORE_INTERVAL_S, and
        only when it changed); True when it was the end of the campaign."""
        ending = DELIVERY_TERMINAL.get(delivery.status)
        if ending is not None:
            await self.finish(campaign_id, ending, reason=delivery.stop_reason, message=delivery.stop_message,
                              stats=delivery.stats)
            return True
        if delivery.status == campaign_pb2.CAMPAIGN_STATUS_PAUSED:
            await self.paused(campaign_id, delivery)
            return True  # followed again once resumed
        values = {"delivery_started": True, **convert.stats_values(delivery.stats)}
        now = asyncio.get_running_loop().time()
        if stored.row is not None and (stored.holds(values) or now - stored.at < PROGRESS_STORE_INTERVAL_S):
            self.feeds.publish(convert.campaign({**stored.row, **values}))
            return False
        async with write_transaction(self.sessions) as session:
            changed = await store.transition(session, campaign_id, Status.IN_PROGRESS, values)
            row = await store.get_campaign(session, campaign_id)
        if row is not None:
            stored.row, stored.at = row, now
            self.feeds.publish(convert.campaign(row))
        return not changed

    async def finish(self, campaign_id: str, status: str, *, reason: int = 0, message: str = "",
                     stats: campaign_pb2.CampaignStats | None = None,
                     expected: str | tuple[str, ...] = Status.IN_PROGRESS) -> tuple[bool, Mapping | None]:
        """Ends the campaign once (completed or stopped) with its event; returns (ended now, row)."""
        completed = status == Status.COMPLETED
        values: dict = {"status": status, "updated_at": self.clock.now()}
        if status == Status.STOPPED:
            values.update(stop_reason=reason or campaign_pb2.STOP_REASON_REQUESTED, stop_message=message)
        if stats is not None:
            values.update(convert.stats_values(stats, completed=completed))
        if completed:
            values["progress"] = 1.0
        async with write_transaction(self.sessions, urgent=True) as session:
            ended = await store.transition(session, campaign_id, expected, values)
            if not ended and stats is not None:
                # Already ended (e.g. by StopCampaign): the delivery's last word on the counters
                # still counts.
                await store.transition(session, campaign_id, status, {
                    name: value for name, value in values.items() if name in store.STATS_COLUMNS})
            row = await store.get_campaign(session, campaign_id)
            if ended and row is not None:
                await events.record(session, row, events.COMPLETED if completed else events.STOPPED, self.clock)
        if ended:
            self.publisher.wake()
        if row is not None:
            self.feeds.publish(convert.campaign(row))
        return ended, row

    async def pause_running(self, campaign_id: str) -> Mapping | None:
        """Pauses an in-progress campaign's delivery, then the campaign; raises FailedPrecondition
        when the delivery ended first, Unavailable on an outage."""
        try:
            delivery = await self.upstream.pause_delivery(campaign_id)
        except grpc.aio.AioRpcError as exc:
            if is_outage(exc):
                raise Unavailable("the delivery service is unavailable; retry the pause",
                                  reason=kit_reasons.DEPENDENCY_UNAVAILABLE) from None
            raise
        ending = DELIVERY_TERMINAL.get(delivery.status)
        if ending is not None:
            await self.finish(campaign_id, ending, reason=delivery.stop_reason, message=delivery.stop_message,
                              stats=delivery.stats)
            raise FailedPrecondition(f"campaign {campaign_id} is {ending}; only an in-progress campaign can be "
                                     "paused", reason=reasons.CAMPAIGN_NOT_PAUSABLE)
        return await self.paused(campaign_id, delivery)

    async def paused(self, campaign_id: str, delivery: delivery_pb2.Delivery) -> Mapping | None:
        """Moves the campaign of a paused delivery to paused, once per pause, with campaign.paused;
        the campaign as it is then. The delivery's pause is the campaign's next one when it was
        resumed as often as the campaign was paused (a late update of a pause the campaign has
        been resumed from since changes nothing)."""
        async with write_transaction(self.sessions, urgent=True) as session:
            row = await store.get_campaign(session, campaign_id)
            if row is None:
                return None
            values = {"status": Status.PAUSED, "pauses": row["pauses"] + 1, "updated_at": self.clock.now(),
                      **convert.stats_values(delivery.stats)}
            moved = await store.transition(session, campaign_id, Status.IN_PROGRESS, values,
                                           store.campaigns.c.pauses == delivery.resumes)
            if moved:
                row = {**row, **values}
                await events.record(session, row, events.PAUSED, self.clock)
            else:
                row = await store.get_campaign(session, campaign_id)
        if moved:
            self.publisher.wake()
        if row is not None:
            self.feeds.publish(convert.campaign(row))
        return row

    async def stop_running(self, campaign_id: str, reason: campaign_pb2.StopReason) -> Mapping | None:
        """Stops an in-progress or paused campaign's delivery, then the campaign; raises
        FailedPrecondition when the delivery completed first, Unavailable on an outage."""
        try:
            delivery = await self.upstream.stop_delivery(campaign_id, reason)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                delivery = None  # never started: nothing was sent
            elif exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                delivery = await self.upstream.get_delivery(campaign_id)
            elif is_outage(exc):
                raise Unavailable("the delivery service is unavailable; retry the stop",
                                  reason=kit_reasons.DEPENDENCY_UNAVAILABLE) from None
            else:
                raise
        if delivery is not None and delivery.status == campaign_pb2.CAMPAIGN_STATUS_COMPLETED:
            _, row = await self.finish(campaign_id, Status.COMPLETED, stats=delivery.stats)
            raise FailedPrecondition(f"campaign {campaign_id} is completed; a completed campaign cannot be stopped",
                                     reason=reasons.CAMPAIGN_COMPLETED)
        stats = delivery.stats if delivery is not None else None
        _, row = await self.finish(campaign_id, Status.STOPPED, reason=reason, stats=stats, expected=Status.SENDING)
        return row

    # --- helpers ------------------------------------------------------------------------------

    async def _load(self, campaign_id: str) -> Mapping | None:
        async with transaction(self.sessions) as session:
            return await store.get_campaign(session, campaign_id)

    async def _mark(self, campaign_id: str, values: dict) -> None:
        async with write_transaction(self.sessions) as session:
            await store.update_fields(session, campaign_id, values)


def _refusal(exc: grpc.aio.AioRpcError) -> DeliveryRefused:
    error = delivery_refusal(exc)
    capacity = isinstance(error, ResourceExhausted)
    return DeliveryRefused(error, campaign_pb2.STOP_REASON_CAPACITY if capacity else campaign_pb2.STOP_REASON_ERROR)
