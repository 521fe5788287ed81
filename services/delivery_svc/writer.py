"""The transactions of a delivery run: a batch with its checkpoint, and the run's end.

A batch is written in ONE transaction — recipient log, messages, outbox events, the month's
usage, the counters and the cursor that covers them — or not at all. Recipients already logged
(a batch replayed after a crash) are left out, so nothing is written twice and the counters
equal a clean run's. Past the monthly message capacity only the messages that fit are written,
and the checkpoint stays before the batch: the stop and the settling of its unsent rest follow
in the run's last transaction (`stop`); a crash in between replays the batch, whose written part
is then filtered out as logged.

The monthly capacity is taken atomically (store.take_monthly_usage), at the end of the batch so
that the month's row is locked only for the commit, as before. What fits is read first: exact
on SQLite, whose writers take turns; on PostgreSQL another writer (another campaign, another
replica) may take part of it in between. Then the take falls short, the transaction is rolled
back, and the batch is written again taking its share first (holding the month's row from the
start), so the capacity is never exceeded and the batch stays all-or-nothing.

A pause is seen the same way as a stop: the batch's first UPDATE (or a partition's counters)
finds the delivery paused — or resumed since, in a later generation, whose snapshot may carry a
new text — and the batch is not written. Nothing is settled then: the batches in flight are
replayed when it resumes.

With a maximum send rate, the batch's transaction also takes the delivery's pace (the time it
may send again: pacing.py), last, so that the row is held only for the commit.

Each batch's transaction is a span (`delivery.write_batch`, with `campaign_id` and the batch's
size) and, once committed, counts its recipients and its duration (delivery_svc.metrics).

PostgreSQL replicas write a partition of the delivery at a time (`partition`), and only while
their replica holds it: each batch's first UPDATE checks the partition's owner, renews the hold
and locks the row; the checkpoint moved is the partition's. Replicas' batches of one delivery
do not wait for each other: the delivery's row is only updated at the batch's end, adding the
counters if the delivery is still in progress — a stop committed meanwhile rolls the batch back.
A replica that lost its partition to another (it stalled past HERALD_LEASE_S) writes nothing
more in it — not even the settling of its unwritten batches, which the new holder replays. The
transaction finishing a partition completes the delivery when it was the last one open.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.delivery_svc import store
from services.delivery_svc.metrics import DeliveryMetrics
from services.delivery_svc.outcomes import FAILED, SKIPPED, CreatedChannel, Outcome, PreparedBatch
from services.kit.bulk import DriverValues
from services.kit.clock import Clock, SystemClock
from services.kit.db import utcnow, write_transaction
from services.kit.limits import MAX_STOP_MESSAGE
from services.kit.tracing import CAMPAIGN_ID

BATCH_SPAN = "delivery.write_batch"
BATCH_SIZE = "herald.batch.size"  # span attributes: recipients in the batch, and those it logged
BATCH_WRITTEN = "herald.batch.written"


@dataclass(slots=True)
class Written:
    """What a batch's transaction wrote."""

    handled: int  # recipients logged
    capacity_reached: bool = False
    unwritten: list[Outcome] = field(default_factory=list)  # past the capacity: not sent, not logged
    sent: int = 0  # of the handled: their outcomes
    skipped: int = 0
    failed: int = 0
    paced_until: float | None = None  # with a maximum rate: when the delivery may send again (pacing.py)


class BatchWriter:
    """Writes the batches of one delivery."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], values: DriverValues, campaign_id: str,
                 monthly_capacity: int, *, metrics: DeliveryMetrics | None = None,
                 tracer: trace.Tracer | None = None, lease: store.Lease | None = None, max_rate: float = 0,
                 clock: Clock | None = None) -> None:
        self.sessions = sessions
        self.lease = lease  # PostgreSQL replicas: this replica's hold, checked by every write
        self.values = values
        self.campaign_id = campaign_id
        self.capacity = monthly_capacity  # 0 = unlimited
        self.max_rate = max_rate  # recipients a second across replicas, 0 = none
        self.clock = clock or SystemClock()  # the pace's time
        self.metrics = metrics
        self.tracer = tracer or trace.NoOpTracer()
        self.partition: store.Partition | None = None  # PostgreSQL replicas: the range being sent
        self.generation = 0  # the delivery's generation the run sends (store.deliveries)

    async def write(self, batch: PreparedBatch) -> Written | None:
        """Writes one batch and its checkpoint, or nothing at all; None when the delivery is no
        longer in progress (stopped meanwhile)."""
        attributes: dict[str, str | int] = {CAMPAIGN_ID: self.campaign_id, BATCH_SIZE: len(batch.outcomes)}
        with self.tracer.start_as_current_span(BATCH_SPAN, attributes=attributes) as span:
            started = time.perf_counter()
            try:
                try:
                    written = await self._write(batch, take_first=False)
                except _CapacityTakenMeanwhile:
                    written = await self._write(batch, take_first=True)
            except _NoLongerInProgress:
                written = None
            if written is not None:  # committed: a rolled-back batch raised instead
                seconds = time.perf_counter() - started
                span.set_attribute(BATCH_WRITTEN, written.handled)
                if self.metrics is not None:
                    self.metrics.batch_written(written.sent, written.skipped, written.failed, seconds)
            return written

    async def _write(self, batch: PreparedBatch, *, take_first: bool) -> Written | None:
        campaign_id = self.campaign_id
        async with write_transaction(self.sessions) as session:
            now = utcnow()
            if not await self._hold(session, now):
                return None
            outcomes = await self._not_logged(session, batch.outcomes)
            written = Written(len(outcomes))
            sent = sum(1 for o in outcomes if o.message is not None)
            if self.capacity > 0:
                if take_first:
                    fits = await store.take_monthly_usage(session, now, sent, self.capacity)
                else:
                    fits = max(0, self.capacity - await store.messages_this_month(session, now))
                if sent > fits:
                    kept = _within(outcomes, fits)
                    kept_ids = {o.target_id for o in kept}
                    written = Written(len(kept), True, [o for o in outcomes if o.target_id not in kept_ids])
                    outcomes, sent = kept, fits
            values, stamp = self.values, self.values.time(now)
            await store.insert_recipient_log(session, values, [
                store.RecipientLogRow(campaign_id, o.target_id, o.status, o.reason, o.cid,
                                      o.message.id if o.message is not None else "", stamp) for o in outcomes])
            await store.insert_messages(session, values, [o.message for o in outcomes if o.message is not None])
            await store.insert_events(session, values, [e for o in outcomes for e in o.events])
            if not take_first and await store.take_monthly_usage(session, now, sent, self.capacity) < sent:
                raise _CapacityTakenMeanwhile  # rolls the batch back; written again, taking first
            deltas = {
                "sent": sent,
                "skipped": sum(1 for o in outcomes if o.status == SKIPPED),
                "failed": sum(1 for o in outcomes if o.status == FAILED),
                "messages_sent": sent,
                "channels_created": sum(1 for o in outcomes if o.created),
                "users_sent": sum(o.users for o in outcomes if o.message is not None),
            }
            cursor = None if written.capacity_reached else batch.cursor
            clock_s = self.clock.now().timestamp()
            if self.partition is None:
                await store.add_progress(session, campaign_id, deltas, cursor, now, clock_s=clock_s)
            else:
                if not await store.add_progress(session, campaign_id, deltas, None, now, generation=self.generation,
                                                clock_s=clock_s):
                    raise _NoLongerInProgress  # stopped or paused meanwhile: rolls the batch back
                if cursor is not None:
                    await store.move_partition_cursor(session, self.partition, cursor)
            if self.max_rate > 0 and written.handled:
                written.paced_until = await store.take_pace(session, campaign_id, clock_s,
                                                            written.handled / self.max_rate)
            written.sent, written.skipped, written.failed = deltas["sent"], deltas["skipped"], deltas["failed"]
        return written

    async def _hold(self, session: AsyncSession, now: dt.datetime) -> bool:
        """Takes the row lock the batch is written under: the partition's (held by this replica),
        else the delivery's (in progress)."""
        if self.partition is not None and self.lease is not None:
            return await store.hold_partition(session, self.partition, self.lease)
        return await store.claim_in_progress(session, self.campaign_id, now, self.generation)

    async def _not_logged(self, session: AsyncSession, outcomes: list[Outcome]) -> list[Outcome]:
        """The outcomes whose recipients have none yet (all but those of a replayed batch)."""
        if not outcomes:
            return outcomes
        ids = [o.target_id for o in outcomes]
        logged = await store.logged_target_ids(session, self.campaign_id, min(ids), max(ids))
        return [o for o in outcomes if o.target_id not in logged] if logged else outcomes

    async def stop(self, reason: int, message: str, created: list[CreatedChannel]) -> None:
        """Stops the delivery (unless it is no longer in progress) and, in the same transaction,
        writes the channel.created events and stats_channels_created of the channels created for
        batches that were not written."""
        async with write_transaction(self.sessions) as session:
            now = utcnow()
            if not await store.holds(session, self.campaign_id, self.lease, self.partition):
                return  # another replica runs the delivery now: it stops and settles it
            row = await store.lock_delivery(session, self.campaign_id)  # after the partition's, as a batch
            if row is None or row.generation != self.generation or row.status == store.PAUSED:
                return  # paused (and maybe resumed since): the unwritten batches are replayed on resume
            await store.stop_delivery(session, self.campaign_id, reason, message[:MAX_STOP_MESSAGE], now)
            if created:
                ids = [c.target_id for c in created]
                # Written by an earlier process (a replayed batch): counted then already.
                logged = await store.logged_target_ids(session, self.campaign_id, min(ids), max(ids))
                created = [c for c in created if c.target_id not in logged]
                await store.insert_events(session, self.values, [c.event for c in created])
                await store.add_progress(session, self.campaign_id, {"channels_created": len(created)}, None, now)

    async def complete(self) -> None:
        async with write_transaction(self.sessions) as session:
            await store.complete_delivery(session, self.campaign_id, utcnow())

    async def complete_unless_open(self) -> None:
        """Completes a partitioned delivery none of whose partitions is open (the last one was
        finished while the delivery was paused)."""
        async with write_transaction(self.sessions) as session:
            await store.lock_delivery(session, self.campaign_id)
            if not await store.any_open_partition(session, self.campaign_id):
                await store.complete_delivery(session, self.campaign_id, utcnow())

    async def finish_partition(self) -> None:
        """The partition is streamed to its end: marks it done, and completes the delivery when
        it was the last one open (one transaction)."""
        assert self.partition is not None and self.lease is not None
        async with write_transaction(self.sessions) as session:
            if await store.finish_partition(session, self.partition, self.lease):
                await store.complete_delivery(session, self.campaign_id, utcnow())
        self.partition = None


class _NoLongerInProgress(Exception):
    """The delivery was stopped or paused while a partition's batch was being written."""


class _CapacityTakenMeanwhile(Exception):
    """Another writer took part of the capacity this batch read as free (PostgreSQL)."""


def _within(outcomes: list[Outcome], messages: int) -> list[Outcome]:
    """The leading outcomes holding at most `messages` messages (the rest stays unsent)."""
    kept = []
    for outcome in sorted(outcomes, key=lambda o: o.target_id):
        if outcome.message is not None:
            if messages == 0:
                break
            messages -= 1
        kept.append(outcome)
    return kept
