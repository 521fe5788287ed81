"""The durable scheduler: starts scheduled campaigns when their time comes, stops running ones
at `stop_at`, and keeps every in-progress campaign followed.

It keeps no state of its own: each tick reads the due rows, so a time that passed while the
service was down fires on the first tick after start-up, and claims are conditional UPDATEs,
so two instances sharing a database never start the same campaign twice. Replicas (PostgreSQL)
also tick one at a time (an advisory lock per tick), so a due campaign's audience is counted
and an expired one's delivery stopped by one replica, not by each.

A scheduled start is a trace of its own (`campaign.scheduled_start`, with `campaign_id`), which
the delivery it starts joins; how late it started is observed in herald_scheduler_lateness_seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from opentelemetry import trace
from sqlalchemy.ext.asyncio import async_sessionmaker

from herald.campaign.v1 import campaign_pb2
from services.campaign_svc import convert, store
from services.kit.clock import Clock
from services.campaign_svc.metrics import CampaignMetrics
from services.campaign_svc.sending import Sending
from services.campaign_svc.store import Status
from services.kit.advisory import lock_key, one_replica_at_a_time
from services.kit.db import transaction
from services.kit.errors import FailedPrecondition, HeraldError, Unavailable
from services.kit.tracing import CAMPAIGN_ID, campaign_scope

log = logging.getLogger("herald.campaign.scheduler")

TICK_S = 0.25
REATTACH_EVERY_TICKS = 8  # ~2 s: pick up campaigns another (dead) instance was following
SCHEDULED_START_SPAN = "campaign.scheduled_start"
LOCK_KEY = lock_key("sc")  # a tick's turn among replicas


class Scheduler:
    def __init__(self, sessions: async_sessionmaker, sending: Sending, clock: Clock, *,
                 metrics: CampaignMetrics | None = None, tracer: trace.Tracer | None = None) -> None:
        self.sessions = sessions
        self.sending = sending
        self.clock = clock
        self.metrics = metrics
        self.tracer = tracer or trace.NoOpTracer()

    async def run(self) -> None:
        ticks = 0
        while True:
            try:
                if ticks % REATTACH_EVERY_TICKS == 0:
                    await self.reattach()
                await self.tick()
            except Exception:  # noqa: BLE001 — the scheduler must outlive one bad tick
                log.exception("scheduler tick failed")
            ticks += 1
            await self.clock.sleep(TICK_S)

    async def reattach(self) -> None:
        """Follows every in-progress campaign (after a restart, or one a dead instance followed)."""
        async with transaction(self.sessions) as session:
            running = await store.in_progress_ids(session)
        for campaign_id in running:
            self.sending.ensure_follower(campaign_id)

    async def tick(self) -> None:
        """Starts what is due and stops what expired, unless another replica is ticking."""
        async with one_replica_at_a_time(self.sessions, LOCK_KEY) as turn:
            if turn:
                await self._tick()

    async def _tick(self) -> None:
        now = self.clock.now()
        async with transaction(self.sessions) as session:
            due = await store.due_scheduled(session, now)
            expired = await store.expired_running(session, now)
        for item in due:
            with self.tracer.start_as_current_span(SCHEDULED_START_SPAN, attributes={CAMPAIGN_ID: item["id"]}), \
                    campaign_scope(item["id"]):
                started = await self._start_due(item, now)
            if not started:
                break  # the segment service cannot count now: the next tick tries again
        for campaign_id in expired:
            await self._stop_expired(campaign_id)

    async def _start_due(self, item: Mapping, now: dt.datetime) -> bool:
        """Starts a due campaign, its audience counted first; False when the segment service is
        unavailable (the campaign stays scheduled)."""
        campaign_id = item["id"]
        if item["stop_at"] is not None and item["stop_at"] <= now:
            # Its whole window passed while the service was down: it never begins.
            await self.sending.finish(campaign_id, Status.STOPPED, reason=campaign_pb2.STOP_REASON_STOP_AT,
                                      expected=Status.SCHEDULED)
            return True
        try:
            total = await self.sending.count_audience(item)
        except Unavailable:
            log.warning("scheduled campaign waits for the segment service to count its audience",
                        extra={"campaign_id": campaign_id})
            return False
        except FailedPrecondition as refused:  # e.g. a segment deleted since: it can never start
            await self.sending.finish(campaign_id, Status.STOPPED, reason=campaign_pb2.STOP_REASON_ERROR,
                                      message=refused.message, expected=Status.SCHEDULED)
            return True
        values = {"status": Status.IN_PROGRESS, "start_owner": self.sending.owner, "start_claimed_at": now,
                  "delivery_started": False, "recipients_total": total, "updated_at": now}
        async with transaction(self.sessions) as session:
            # Matching scheduled_for and updated_at too: a reschedule or an update that just
            # landed wins over this claim (the next tick counts the audience as it is now).
            claimed = await store.transition(session, campaign_id, Status.SCHEDULED, values,
                                             store.campaigns.c.scheduled_for == item["scheduled_for"],
                                             store.campaigns.c.updated_at == item["updated_at"])
            row = await store.get_campaign(session, campaign_id) if claimed else None
        if row is None:
            return True
        late_s = (now - item["scheduled_for"]).total_seconds()
        if self.metrics is not None:
            self.metrics.scheduler_lateness.observe(max(0.0, late_s))
        log.info("scheduled campaign starts", extra={"campaign_id": campaign_id, "late_s": late_s})
        self.sending.feeds.publish(convert.campaign(row))
        self.sending.ensure_follower(campaign_id)  # the follower starts the delivery
        return True

    async def _stop_expired(self, campaign_id: str) -> None:
        try:
            await self.sending.stop_running(campaign_id, campaign_pb2.STOP_REASON_STOP_AT)
            log.info("campaign stopped at stop_at", extra={"campaign_id": campaign_id})
        except HeraldError as exc:  # completed first, or delivery unreachable: next tick decides
            log.info("stop_at not applied yet", extra={"campaign_id": campaign_id, "why": exc.message})
