"""`campaign.*` events: written to an outbox in the transaction that changes the status, then
handed to the delivery service's PublishEvent by a background loop.

Each event's id is fixed by the campaign and the event type, and PublishEvent is idempotent
by id, so a crash between publishing and marking it published never doubles an event. Replicas
(PostgreSQL) publish one at a time (an advisory lock per pass), so each event is handed over
once rather than once per replica; a replica that finds the turn taken leaves its events to
the holder's pass, which reads until none is pending, or to the next poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2
from services.campaign_svc import convert, store
from services.kit.clock import Clock
from services.campaign_svc.upstream import Upstream, is_outage
from services.campaign_svc.views import Views
from services.kit import event_types
from services.kit.advisory import lock_key, one_replica_at_a_time
from services.kit.db import transaction
from services.kit.limits import CAMPAIGN_USERS_PAGE
from services.kit.protos import timestamp

log = logging.getLogger("herald.campaign.events")

STARTED = event_types.CAMPAIGN_STARTED
COMPLETED = event_types.CAMPAIGN_COMPLETED
STOPPED = event_types.CAMPAIGN_STOPPED
PAUSED = event_types.CAMPAIGN_PAUSED
RESUMED = event_types.CAMPAIGN_RESUMED

IDLE_POLL_S = 1.0
LOCK_KEY = lock_key("ce")  # a publishing pass's turn among replicas
RETRY_MAX_S = 5.0
EVENT_USERS = CAMPAIGN_USERS_PAGE.default  # targeted users carried by an event's campaign, as GetCampaign's


def event_id(row: Mapping, type_: str) -> str:
    # `instance` differs between a campaign and a later one that reuses its id; a campaign is
    # paused and resumed any number of times, each pause counted (`pauses`).
    if type_ in (PAUSED, RESUMED):
        return f"{type_}:{row['instance']}:{row['pauses']}"
    return f"{type_}:{row['instance']}"


async def record(session: AsyncSession, row: Mapping, type_: str, clock: Clock) -> None:
    """Adds the event for the campaign as it now is (`row`: status and stats) to the outbox."""
    payload = convert.campaign(row).SerializeToString()
    await store.add_event(session, event_id(row, type_), row["id"], type_, payload, clock.now())


class Publisher:
    """Hands pending outbox events to the delivery service, oldest first."""

    def __init__(self, sessions: async_sessionmaker, upstream: Upstream, clock: Clock, views: Views) -> None:
        self._sessions = sessions
        self._upstream = upstream
        self._clock = clock
        self._views = views
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        delay = 0.0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S + delay)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.publish_pending()
                delay = 0.0
            except grpc.aio.AioRpcError as exc:
                delay = min(RETRY_MAX_S, max(0.2, delay * 2))
                if not is_outage(exc):
                    log.error("PublishEvent refused an event", extra={"code": str(exc.code()), "details": exc.details()})
            except Exception:  # noqa: BLE001 — a background loop must outlive one bad round
                delay = min(RETRY_MAX_S, max(0.2, delay * 2))
                log.exception("publishing campaign events failed")

    async def publish_pending(self) -> int:
        """Hands over the pending events; returns how many (none when another replica is)."""
        async with one_replica_at_a_time(self._sessions, LOCK_KEY) as turn:
            return await self._publish_pending() if turn else 0

    async def _publish_pending(self) -> int:
        published = 0
        while True:
            async with transaction(self._sessions) as session:
                pending = await store.pending_events(session)
            if not pending:
                return published
            for row in pending:
                event = self._event(row)
                # The full campaign object: status and stats as recorded, plus sender, segments
                # and the first page of users (an outage retries the event later).
                await self._views.complete([event.campaign], user_limit=EVENT_USERS)
                await self._upstream.publish_event(event)
                async with transaction(self._sessions) as session:
                    await store.mark_published(session, row["id"], self._clock.now())
                published += 1

    @staticmethod
    def _event(row: Mapping) -> delivery_pb2.Event:
        event = delivery_pb2.Event(id=row["id"], type=row["type"],
                                   campaign=campaign_pb2.Campaign.FromString(row["payload"]))
        event.created_at.CopyFrom(timestamp(row["created_at"]))
        return event
