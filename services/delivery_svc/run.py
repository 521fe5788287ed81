"""A delivery run: one asyncio task sends one campaign from its checkpoint to the end.

A run counts the audience only when its snapshot came without the count campaign_svc took, then
streams recipient batches from the checkpoint cursor. Each batch is prepared (channel specs
rendered, one EnsureChannels call, messages rendered) while the previous one is being written
(pipeline.py), and written in ONE transaction: messages, outcomes, outbox events, counters and
the cursor that covers them (writer.py). So a crash at any point loses at most an uncommitted
batch, which the restarted run streams and writes again; ids derive from campaign + target and
already-logged targets are filtered out, so nothing is written twice and the counters equal a
clean run's. EnsureChannels is idempotent per (campaign, recipient) on the segment side, so
`created` and thus stats_channels_created are stable across such a replay.

The run ends a delivery itself (stop requested, capacity, error): it stops streaming, waits for
the EnsureChannels calls already on their way, and in ONE transaction marks the delivery stopped
and settles the batches whose channels were ensured but whose messages were not written: their
created channels get their channel.created events and count in stats_channels_created, their
recipients stay unsent (no message, no log row). A crash before that transaction leaves the
delivery in progress, so the restarted run replays those batches and nothing is lost.
What remains: when the run does not end within STOP_WAIT_S of a StopDelivery, the stop is
committed without it and the run settles a moment later in its own transaction; a crash in
that window leaves up to BATCHES_IN_FLIGHT batches' new channels without events or count. An
error stop after UNAVAILABLE/DEADLINE_EXCEEDED exhausted the retries settles only the batches
whose EnsureChannels had answered.

A run sends one generation of its delivery (moved on by each resume, with the campaign's snapshot
as it was then): it ends as soon as the delivery is not in progress in that generation — stopped,
paused, or paused and resumed since — and a pause settles nothing (the batches in flight are
replayed on resume, as after a crash). PostgreSQL replicas send partitions (engine.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry import trace
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.campaign.v1 import campaign_pb2
from services.delivery_svc import store
from services.delivery_svc.addressing import Addressing
from services.delivery_svc.compose import Composer
from services.delivery_svc.metrics import DeliveryMetrics
from services.delivery_svc.notifier import Notifier
from services.delivery_svc.outcomes import CreatedChannel, PreparedBatch, created_channels
from services.delivery_svc.pacing import Pacer, batch_size, max_rate_of
from services.delivery_svc.pipeline import Pipeline, StopRequested
from services.delivery_svc.render import CampaignTemplates, sender_to_dict
from services.delivery_svc.upstream import SegmentClient
from services.delivery_svc.writer import BatchWriter
from services.kit.bulk import DriverValues
from services.kit.clock import Clock, SystemClock
from services.kit.config import Settings
from services.kit.db import transaction, utcnow, write_transaction
from services.kit.limits import DEFAULT_RECIPIENT_BATCH, MAX_RECIPIENT_BATCH
from services.kit.retry import is_unavailable, retrying
from services.kit.templates import user_variables
from services.kit.tracing import bind_campaign

log = logging.getLogger("herald.delivery")

# PostgreSQL replicas share a delivery by partitions of about this many recipients, at most
# MAX_PARTITIONS of them: small enough that replicas share a 20,000-recipient campaign, few
# enough that a partition's start (a stream call, the pipeline filling) is noise.
PARTITION_RECIPIENTS = 5_000
MAX_PARTITIONS = 64

# Resumes after UNAVAILABLE without progress in between, before the delivery stops with ERROR.
RESUME_ATTEMPTS = 40
RESUME_MAX_WAIT_S = 5.0


@dataclass
class EngineDeps:
    """What every run needs, built once by the composition root."""

    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    segments: SegmentClient
    notifier: Notifier
    metrics: DeliveryMetrics | None = None  # None: metrics off
    tracer: trace.Tracer = field(default_factory=trace.NoOpTracer)
    lease: store.Lease | None = None  # PostgreSQL replicas: this replica's hold on its deliveries
    clock: Clock = field(default_factory=SystemClock)  # pacing's time (tests drive it)

    @property
    def dialect_name(self) -> str:
        return self.sessions.kw["bind"].dialect.name


class Stopped(Exception):
    """The run ends without completing: stop requested, capacity reached, or the delivery is no
    longer in progress (then the stop it commits changes nothing)."""

    def __init__(self, reason: campaign_pb2.StopReason = campaign_pb2.STOP_REASON_REQUESTED, message: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class _Resume(Exception):
    """UNAVAILABLE after some progress: resume from the checkpoint with a fresh retry budget."""


class DeliveryRun:
    """Sends one campaign from its checkpoint to the end (or until stopped)."""

    def __init__(self, campaign: campaign_pb2.Campaign, deps: EngineDeps,
                 templates: CampaignTemplates | None = None, generation: int = 0) -> None:
        self.campaign = campaign
        self.campaign_id = campaign.id
        self.deps = deps
        self.templates = templates  # compiled by StartDelivery; after a restart, by the run
        self.stop_requested = asyncio.Event()
        self.stop_reason, self.stop_message = campaign_pb2.STOP_REASON_REQUESTED, ""
        self.max_rate = max_rate_of(campaign.max_send_rate, deps.settings.max_send_rate)
        self.pacer = Pacer(deps.clock)
        self.writer = BatchWriter(deps.sessions, DriverValues(deps.dialect_name), campaign.id,
                                  deps.settings.monthly_message_capacity, metrics=deps.metrics, tracer=deps.tracer,
                                  lease=deps.lease, max_rate=self.max_rate, clock=deps.clock)
        # Channels created for batches that will not be written, settled when the run ends.
        self._unsettled: list[CreatedChannel] = []
        self._pipeline: Pipeline | None = None
        self.writer.generation = self.generation = generation  # the delivery's, as of `campaign`

    # --- lifecycle ---

    async def run(self) -> None:
        bind_campaign(self.campaign_id)  # the run's own task: its logs (and spans) say the campaign
        try:
            templates = self.templates
            if templates is None:  # compiling may take a while (20,000 characters a template): not on the loop
                templates = await asyncio.to_thread(CampaignTemplates, self.campaign)
            sender = user_variables(sender_to_dict(self.campaign,
                                                   await self.deps.segments.get_user(self.campaign.sender_id)))
            await self._count_audience_unless_counted()
            addressing = Addressing(self.campaign, templates, sender)
            composer = Composer(self.campaign, templates, self.writer.values)
            if self.deps.lease is None:
                await self._send_all(addressing, composer)
                await self.writer.complete()
            else:
                await self._send_partitions(addressing, composer)
        except Stopped as stopped:
            await self._end(stopped.reason, stopped.message)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as exc:
            log.warning("delivery stopped by an upstream error",
                        extra={"campaign_id": self.campaign_id, "code": exc.code().name})
            await self._end(campaign_pb2.STOP_REASON_ERROR,
                            f"segment service answered {exc.code().name}: {exc.details()}")
        except Exception as exc:  # noqa: BLE001 — a delivery that cannot go on stops, visibly
            log.exception("delivery failed", extra={"campaign_id": self.campaign_id})
            await self._end(campaign_pb2.STOP_REASON_ERROR, f"internal error ({exc.__class__.__name__})")
        finally:
            self.deps.notifier.notify(self.campaign_id)

    def request_stop(self, reason: campaign_pb2.StopReason = campaign_pb2.STOP_REASON_REQUESTED, message: str = "") -> None:
        """Ends the run after the batch being written; the run then commits the stop itself,
        with the channels of the batches it will not write."""
        if not self.stop_requested.is_set():
            self.stop_reason, self.stop_message = reason, message
        self.stop_requested.set()
        if self._pipeline is not None:
            self._pipeline.wake()

    def rate(self) -> float:
        """Recipients handled per second over the last few seconds."""
        return self.pacer.rate()

    async def _end(self, reason: campaign_pb2.StopReason, message: str) -> None:
        await self.writer.stop(reason, message, self._unsettled)
        self._unsettled = []

    async def _count_audience_unless_counted(self) -> None:
        """Counts the audience of a delivery whose snapshot came without its count (started by
        an older campaign service); campaign_svc counts before it starts a campaign."""
        async with transaction(self.deps.sessions) as session:
            row = self._current(await store.get_delivery(session, self.campaign_id))
        if row.recipients_total is not None:
            return
        total = await self.deps.segments.count_recipients(self.campaign)
        async with write_transaction(self.deps.sessions) as session:
            await store.set_recipients_total(session, self.campaign_id, total, utcnow())
        self.deps.notifier.notify(self.campaign_id)

    # --- sending ---

    async def _send_all(self, addressing: Addressing, composer: Composer) -> None:
        """Sends from the checkpoint; UNAVAILABLE (the segment service restarting) resumes from
        the checkpoint with jittered backoff instead of failing the campaign."""
        while True:
            try:
                async for attempt in retrying(RESUME_ATTEMPTS, RESUME_MAX_WAIT_S):
                    with attempt:
                        handled_before = self.pacer.handled
                        try:
                            await self._send_from_checkpoint(addressing, composer)
                        except grpc.aio.AioRpcError as exc:
                            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                                raise _Resume() from exc
                            if is_unavailable(exc):
                                log.warning("segment service unavailable; resuming from the checkpoint",
                                            extra={"campaign_id": self.campaign_id})
                                if self.pacer.handled > handled_before:
                                    raise _Resume() from exc
                            raise
                return
            except _Resume:
                continue

    async def _send_partitions(self, addressing: Addressing, composer: Composer) -> None:
        """PostgreSQL replicas: cuts the delivery into partitions unless another replica did,
        then sends one partition after another until none is left that no replica holds."""
        await self._partition()
        lease = self.deps.lease
        assert lease is not None
        while True:
            async with write_transaction(self.deps.sessions) as session:
                self.writer.partition = await store.claim_partition(session, self.campaign_id, lease)
            if self.writer.partition is None:
                # The rest is sent by other replicas; the last one to finish completes it (or
                # this run, when the last one was finished while the delivery was paused).
                await self.writer.complete_unless_open()
                return
            await self._send_all(addressing, composer)
            await self.writer.finish_partition()

    async def _partition(self) -> None:
        """Cuts the audience into ranges of about PARTITION_RECIPIENTS recipients (at most
        MAX_PARTITIONS), once: a replica that finds the delivery cut already takes its cuts."""
        async with transaction(self.deps.sessions) as session:
            if await store.has_partitions(session, self.campaign_id):
                return
            row = self._current(await store.get_delivery(session, self.campaign_id))
        parts = min(MAX_PARTITIONS, max(1, -(-(row.recipients_total or 0) // PARTITION_RECIPIENTS)))
        boundaries = await self.deps.segments.split_recipients(self.campaign, parts) if parts > 1 else []
        async with write_transaction(self.deps.sessions) as session:
            locked = self._current(await store.lock_delivery(session, self.campaign_id))
            if not await store.has_partitions(session, self.campaign_id):
                # From the delivery's own checkpoint: one started before partitions resumes there.
                await store.insert_partitions(session, self.campaign_id, locked.cursor, boundaries)

    async def _checkpoint(self) -> tuple[str, str]:
        """Where the next pass starts and ends: the partition's checkpoint and end, or the
        delivery's checkpoint and the audience's end."""
        partition = self.writer.partition
        async with transaction(self.deps.sessions) as session:
            row = self._current(await store.get_delivery(session, self.campaign_id))
            if partition is None:
                return row.cursor, ""
            return await store.partition_checkpoint(session, partition), partition.last_id

    async def _send_from_checkpoint(self, addressing: Addressing, composer: Composer) -> None:
        cursor, last = await self._checkpoint()
        if self.stop_requested.is_set():
            raise self._stopped()
        self._unsettled = []  # a resumed pass replays whatever an earlier one left unwritten
        pipeline = Pipeline(self.campaign, self.deps.segments, addressing, composer,
                            _batch_size(self.deps.settings, self.max_rate), self._unsettled)
        self._pipeline = pipeline
        try:
            await pipeline.run(cursor, self._write, self.pacer, self.stop_requested, last)
        except StopRequested:
            raise self._stopped() from None
        finally:
            self._pipeline = None

    async def _write(self, batch: PreparedBatch) -> None:
        written = await self.writer.write(batch)
        if written is None:
            self._unsettled.extend(created_channels(batch.outcomes))
            raise Stopped()
        self.pacer.count(written.handled, written.paced_until)
        self.deps.notifier.notify(self.campaign_id)
        if written.capacity_reached:
            self._unsettled.extend(created_channels(written.unwritten))
            raise Stopped(campaign_pb2.STOP_REASON_CAPACITY,
                          f"monthly message capacity of {self.writer.capacity} reached")

    def _current(self, row: Row[Any] | None) -> Row[Any]:
        """The delivery's row, while it is in progress in this run's generation; else the run
        ends (Stopped: a stop settles, a pause or a later generation leaves it be)."""
        if row is None or row.status != store.IN_PROGRESS or row.generation != self.generation:
            raise Stopped()
        return row

    def _stopped(self) -> Stopped:
        return Stopped(self.stop_reason, self.stop_message)


def _batch_size(settings: Settings, max_rate: float) -> int:
    """Recipients per streamed batch: the configured size within the contract's batch limit
    (one EnsureChannels call takes a whole batch), held to the pace."""
    configured = max(1, min(settings.delivery_batch_size or DEFAULT_RECIPIENT_BATCH, MAX_RECIPIENT_BATCH))
    return batch_size(configured, max_rate)
