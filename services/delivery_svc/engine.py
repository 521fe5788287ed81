"""The sending engine: one asyncio task per in-progress delivery.

A run counts the audience once, then streams recipient batches from the checkpoint cursor.
Each batch is prepared (channel specs rendered, one EnsureChannels call, messages rendered)
while the previous one is being written, and written in ONE transaction: messages, outcomes,
outbox events, counters and the cursor that covers them. So a crash at any point loses at most
an uncommitted batch, which the restarted run streams and writes again; ids derive from
campaign + target and already-logged targets are filtered out, so nothing is written twice and
the counters equal a clean run's. EnsureChannels is idempotent per (campaign, recipient) on the
segment side, so `created` and thus stats_channels_created are stable across such a replay.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2
from herald.segment.v1 import (directory_service_pb2, directory_service_pb2_grpc, segment_service_pb2,
                               segment_service_pb2_grpc)
from services.delivery_svc import store
from services.delivery_svc.notifier import Notifier
from services.delivery_svc.render import CampaignTemplates, RecipientFailed, channel_to_dict, user_to_dict
from services.kit.bulk import DriverValues, write_tuples
from services.kit.config import Settings
from services.kit.db import transaction, utcnow
from services.kit.retry import call_idempotent, is_unavailable, retrying
from services.kit.templates import user_variables

log = logging.getLogger("herald.delivery")

SENT = delivery_pb2.RECIPIENT_STATUS_SENT
SKIPPED = delivery_pb2.RECIPIENT_STATUS_SKIPPED
FAILED = delivery_pb2.RECIPIENT_STATUS_FAILED

USER_NOT_FOUND = "user_not_found"
CHANNEL_NOT_FOUND = "channel_not_found"

MAX_BATCH = 10_000
# Batches held at once (bounds memory): one being written, two being addressed (EnsureChannels
# for the next one already sent while this one's messages are rendered).
BATCHES_IN_FLIGHT = 3
ENSURES_IN_FLIGHT = 2
CALL_DEADLINE_S = 60.0
# A stream of millions of recipients takes a while; an expired deadline resumes from the cursor.
STREAM_DEADLINE_S = 3600.0
# Resumes after UNAVAILABLE without progress in between, before the delivery stops with ERROR.
RESUME_ATTEMPTS = 40
RESUME_MAX_WAIT_S = 5.0
RATE_WINDOW_S = 5.0

MESSAGE_ID_NAMESPACE = uuid.UUID("6f1d3a8e-3c57-4f0e-9a43-2b8e4f0c9d11")


def message_id(campaign_id: str, target_id: str) -> str:
    """The id of a campaign's message to one recipient: the same on every replay."""
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{campaign_id}\x00{target_id}"))


class _Stopped(Exception):
    """The delivery is no longer in progress (stopped by request, capacity or error)."""


_STOP = object()  # queued by request_stop to wake a writer waiting for the next batch


class _Resume(Exception):
    """UNAVAILABLE after some progress: resume from the checkpoint with a fresh retry budget."""


@dataclass(slots=True)
class Outcome:
    target_id: str
    status: int
    reason: str = ""
    cid: str = ""
    message: tuple | None = None  # store.MESSAGE_COLUMNS
    events: list[tuple] = field(default_factory=list)  # store.EVENT_COLUMNS
    created: bool = False
    users: int = 0


@dataclass(slots=True)
class PreparedBatch:
    outcomes: list[Outcome]
    cursor: str


@dataclass
class EngineDeps:
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    segments: segment_service_pb2_grpc.SegmentServiceStub
    directory: directory_service_pb2_grpc.DirectoryServiceStub
    notifier: Notifier

    @property
    def dialect_name(self) -> str:
        return self.sessions.kw["bind"].dialect.name


class DeliveryRun:
    """Sends one campaign from its checkpoint to the end (or until stopped)."""

    def __init__(self, campaign: campaign_pb2.Campaign, deps: EngineDeps) -> None:
        self.campaign = campaign
        self.campaign_id = campaign.id
        self.deps = deps
        self.stop_requested = asyncio.Event()
        self._producer: asyncio.Task | None = None
        self._ready: asyncio.Queue | None = None
        self.templates: CampaignTemplates | None = None
        self.sender: dict[str, Any] = {}
        self.target_kind = "user" if campaign.user_ids else ""
        self.handled = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        settings = deps.settings
        batch_size = max(1, min(settings.delivery_batch_size or 1000, MAX_BATCH))
        if settings.max_send_rate > 0:
            batch_size = min(batch_size, max(1, int(settings.max_send_rate)))
        self.batch_size = batch_size
        self.values = DriverValues(deps.dialect_name)

    # --- lifecycle ---

    async def run(self) -> None:
        try:
            self.templates = CampaignTemplates(self.campaign)
            self.sender = user_variables(await self._load_sender())
            await self._count_audience()
            await self._send_all()
            await self._complete()
        except _Stopped:
            pass
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as exc:
            log.warning("delivery stopped by an upstream error",
                        extra={"campaign_id": self.campaign_id, "code": exc.code().name})
            await self._stop_with_error(f"segment service answered {exc.code().name}: {exc.details()}")
        except Exception as exc:  # noqa: BLE001 — a delivery that cannot go on stops, visibly
            log.exception("delivery failed", extra={"campaign_id": self.campaign_id})
            await self._stop_with_error(f"internal error ({exc.__class__.__name__})")
        finally:
            self.deps.notifier.notify(self.campaign_id)

    def request_stop(self) -> None:
        """Ends the run after the batch being written (the stopped status guards every write)."""
        self.stop_requested.set()
        if self._producer is not None:
            self._producer.cancel()
        if self._ready is not None:
            self._ready.put_nowait(_STOP)

    def rate(self) -> float:
        """Recipients handled per second over the last few seconds."""
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    async def _stop_with_error(self, message: str) -> None:
        async with transaction(self.deps.sessions) as session:
            await store.stop_delivery(session, self.campaign_id, campaign_pb2.STOP_REASON_ERROR, message[:1000],
                                      utcnow())

    async def _load_sender(self) -> dict[str, Any]:
        response = await call_idempotent(self.deps.directory.GetUsers,
                                         directory_service_pb2.GetUsersRequest(ids=[self.campaign.sender_id]),
                                         timeout=CALL_DEADLINE_S)
        if response.users:
            return user_to_dict(response.users[0])
        if self.campaign.sender.id == self.campaign.sender_id:
            return user_to_dict(self.campaign.sender)
        return {"id": self.campaign.sender_id, "name": "", "role": "", "teams": [], "custom": {}}

    async def _count_audience(self) -> None:
        async with transaction(self.deps.sessions) as session:
            row = await store.get_delivery(session, self.campaign_id)
        if row is None or row.status != store.IN_PROGRESS:
            raise _Stopped()
        if row.recipients_total is not None:
            return
        response = await call_idempotent(self.deps.segments.CountRecipients, segment_service_pb2.CountRecipientsRequest(
            segment_ids=self.campaign.segment_ids, user_ids=self.campaign.user_ids,
            sender_id=self.campaign.sender_id), timeout=CALL_DEADLINE_S)
        async with transaction(self.deps.sessions) as session:
            await store.set_recipients_total(session, self.campaign_id, response.count, utcnow())
        self.deps.notifier.notify(self.campaign_id)

    async def _complete(self) -> None:
        async with transaction(self.deps.sessions) as session:
            await store.complete_delivery(session, self.campaign_id, utcnow())

    # --- sending ---

    async def _send_all(self) -> None:
        """Sends from the checkpoint; UNAVAILABLE (the segment service restarting) resumes from
        the checkpoint with jittered backoff instead of failing the campaign."""
        while True:
            try:
                async for attempt in retrying(RESUME_ATTEMPTS, RESUME_MAX_WAIT_S):
                    with attempt:
                        handled_before = self.handled
                        try:
                            await self._send_from_checkpoint()
                        except grpc.aio.AioRpcError as exc:
                            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                                raise _Resume() from exc
                            if is_unavailable(exc):
                                log.warning("segment service unavailable; resuming from the checkpoint",
                                            extra={"campaign_id": self.campaign_id})
                                if self.handled > handled_before:
                                    raise _Resume() from exc
                            raise
                return
            except _Resume:
                continue

    async def _send_from_checkpoint(self) -> None:
        async with transaction(self.deps.sessions) as session:
            row = await store.get_delivery(session, self.campaign_id)
        if row is None or row.status != store.IN_PROGRESS:
            raise _Stopped()
        if self.stop_requested.is_set():
            raise _Stopped()
        slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        ready: asyncio.Queue = asyncio.Queue()
        producer = asyncio.create_task(self._produce(row.cursor, slots, ready))
        self._producer, self._ready = producer, ready
        started = time.monotonic()
        handled_at_start = self.handled
        try:
            while True:
                item = await ready.get()
                if item is None:
                    return
                if item is _STOP:
                    raise _Stopped()
                if isinstance(item, BaseException):
                    raise item
                await self._write(item)
                slots.release()
                if self.stop_requested.is_set():
                    raise _Stopped()
                await self._pace(started, self.handled - handled_at_start)
        finally:
            self._producer = self._ready = None
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)

    async def _produce(self, cursor: str, slots: asyncio.Semaphore, ready: asyncio.Queue) -> None:
        """Streams batches and prepares them while the writer writes: the next batch's
        EnsureChannels is already on its way while this one's messages are rendered, so the
        segment service always has a batch to work on."""
        in_flight: collections.deque = collections.deque()
        try:
            request = segment_service_pb2.StreamRecipientsRequest(
                segment_ids=self.campaign.segment_ids, user_ids=self.campaign.user_ids,
                sender_id=self.campaign.sender_id, cursor=cursor, batch_size=self.batch_size)
            stream = self.deps.segments.StreamRecipients(request, timeout=STREAM_DEADLINE_S)
            async for response in stream:
                await slots.acquire()
                outcomes, specs, contexts = self._address(response)
                ensuring = asyncio.ensure_future(self._ensure(specs)) if specs else None
                in_flight.append((response.cursor, outcomes, specs, contexts, ensuring))
                if len(in_flight) == ENSURES_IN_FLIGHT:
                    await ready.put(await self._complete_batch(*in_flight.popleft()))
            while in_flight:
                await ready.put(await self._complete_batch(*in_flight.popleft()))
            await ready.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 — handed to the writer, which decides
            await ready.put(exc)
        finally:
            for *_, ensuring in in_flight:
                if ensuring is not None:
                    ensuring.cancel()

    async def _pace(self, started: float, handled: int) -> None:
        rate = self.deps.settings.max_send_rate
        if rate > 0:
            ahead = handled / rate - (time.monotonic() - started)
            if ahead > 0:
                try:
                    await asyncio.wait_for(self.stop_requested.wait(), ahead)
                except TimeoutError:
                    pass

    # --- one batch ---

    def _skip_reason(self, target_id: str) -> str:
        kind = self.target_kind or ("channel" if ":" in target_id else "user")
        return CHANNEL_NOT_FOUND if kind == "channel" else USER_NOT_FOUND

    def _address(self, response: segment_service_pb2.StreamRecipientsResponse) -> tuple[list, list, list]:
        """Outcomes known at once (skipped, failed), and a channel spec + template context per
        recipient that needs its channel ensured."""
        outcomes = [Outcome(target_id, SKIPPED, self._skip_reason(target_id)) for target_id in response.skipped_ids]
        templates = self.templates
        sender_context = {"sender": self.sender}
        specs: list[directory_service_pb2.ChannelSpec] = []
        contexts: list[dict[str, Any]] = []
        for recipient in response.recipients:
            if recipient.WhichOneof("target") == "channel":
                self.target_kind = "channel"
                cid = recipient.channel.cid or recipient.target_id
                specs.append(directory_service_pb2.ChannelSpec(recipient_id=recipient.target_id, cid=cid))
                contexts.append(sender_context)
                continue
            self.target_kind = "user"
            context = sender_context
            if templates.needs_receiver:
                context = {"sender": self.sender, "receiver": user_variables(user_to_dict(recipient.user))}
            try:
                specs.append(templates.user_channel_spec(recipient.target_id, context))
            except RecipientFailed as failure:
                outcomes.append(Outcome(recipient.target_id, FAILED, failure.reason))
                continue
            contexts.append(context)
        return outcomes, specs, contexts

    async def _ensure(self, specs: list) -> directory_service_pb2.EnsureChannelsResponse:
        campaign = self.campaign
        request = directory_service_pb2.EnsureChannelsRequest(
            campaign_id=campaign.id, sender_id=campaign.sender_id, create_channels=campaign.create_channels,
            sender_mode=campaign.sender_mode, sender_visibility=campaign.sender_visibility,
            show_channels=campaign.show_channels, channels=specs)
        return await call_idempotent(self.deps.directory.EnsureChannels, request, timeout=CALL_DEADLINE_S)

    async def _complete_batch(self, cursor: str, outcomes: list, specs: list, contexts: list,
                              ensuring: asyncio.Future | None) -> PreparedBatch:
        if ensuring is not None:
            outcomes.extend(self._render_messages(specs, contexts, await ensuring))
        return PreparedBatch(outcomes, cursor)

    def _render_messages(self, specs: list, contexts: list[dict[str, Any]],
                         response: directory_service_pb2.EnsureChannelsResponse) -> list[Outcome]:
        campaign = self.campaign
        templates = self.templates
        sender_id = campaign.sender_id
        campaign_id = campaign.id
        values = self.values
        now = values.time(utcnow())
        # Template parts without templates in them are the same for everyone: encoded once.
        attachments_json = values.json(templates.static_attachments) if templates.static_attachments is not None else ""
        custom_json = values.json(templates.static_custom) if templates.static_custom is not None else ""
        outcomes = []
        for spec, context, ensured in zip(specs, contexts, response.channels):
            target_id = spec.recipient_id
            if not ensured.cid:
                outcomes.append(Outcome(target_id, SKIPPED, ensured.skip_reason or CHANNEL_NOT_FOUND))
                continue
            cid = ensured.cid
            if templates.needs_channel:
                context = {**context, "channel": channel_to_dict(ensured.channel)}
            outcome = Outcome(target_id, SENT, cid=cid, created=ensured.created)
            members = list(ensured.member_ids)
            members_json = values.json(members)
            payload = delivery_pb2.Event(channel=ensured.channel).SerializeToString()
            if ensured.created:
                outcome.events.append((f"channel.created:{campaign_id}:{cid}", "channel.created", campaign_id, cid,
                                       "", members_json, payload, now))
            try:
                text, attachments, custom = templates.message(context)
            except RecipientFailed as failure:
                outcome.status, outcome.reason = FAILED, failure.reason
                outcomes.append(outcome)
                continue
            mid = message_id(campaign_id, target_id)
            outcome.message = (mid, cid, "regular", text, sender_id,
                               attachments_json or values.json(attachments), custom_json or values.json(custom),
                               templates.poll_id, campaign_id, now)
            outcome.events.append((f"message.new:{mid}", "message.new", campaign_id, cid, mid, members_json, payload,
                                   now))
            outcome.users = 1 if spec.receiver_id else sum(1 for m in members if m != sender_id)
            outcomes.append(outcome)
        return outcomes

    async def _write(self, batch: PreparedBatch) -> None:
        """Writes one batch and its checkpoint in one transaction, or nothing at all."""
        campaign_id = self.campaign_id
        capacity = self.deps.settings.monthly_message_capacity
        capacity_reached = False
        async with transaction(self.deps.sessions) as session:
            now = utcnow()
            if not await store.claim_in_progress(session, campaign_id, now):
                raise _Stopped()
            outcomes = batch.outcomes
            if outcomes:
                ids = [o.target_id for o in outcomes]
                logged = await store.logged_target_ids(session, campaign_id, min(ids), max(ids))
                if logged:
                    outcomes = [o for o in outcomes if o.target_id not in logged]
            sent = sum(1 for o in outcomes if o.message is not None)
            if capacity > 0:
                remaining = max(0, capacity - await store.messages_this_month(session, now))
                if sent > remaining:
                    outcomes, sent, capacity_reached = _within(outcomes, remaining), remaining, True
            values, stamp = self.values, self.values.time(now)
            await write_tuples(session, values, store.recipient_log, store.LOG_COLUMNS, [
                (campaign_id, o.target_id, o.status, o.reason, o.cid, o.message[0] if o.message else "", stamp)
                for o in outcomes])
            await write_tuples(session, values, store.messages, store.MESSAGE_COLUMNS,
                                     [o.message for o in outcomes if o.message is not None])
            await write_tuples(session, values, store.events, store.EVENT_COLUMNS,
                                     [e for o in outcomes for e in o.events])
            await store.add_monthly_usage(session, now, sent)
            deltas = {
                "sent": sent,
                "skipped": sum(1 for o in outcomes if o.status == SKIPPED),
                "failed": sum(1 for o in outcomes if o.status == FAILED),
                "messages_sent": sent,
                "channels_created": sum(1 for o in outcomes if o.created),
                "users_sent": sum(o.users for o in outcomes if o.message is not None),
            }
            # A capacity stop is terminal, so its checkpoint need not cover the unsent rest.
            await store.add_progress(session, campaign_id, deltas, None if capacity_reached else batch.cursor, now)
            if capacity_reached:
                await store.stop_delivery(session, campaign_id, campaign_pb2.STOP_REASON_CAPACITY,
                                          f"monthly message capacity of {capacity} reached", now)
        self.handled += len(outcomes)
        self._sample()
        self.deps.notifier.notify(campaign_id)
        if capacity_reached:
            raise _Stopped()

    def _sample(self) -> None:
        now = time.monotonic()
        self._samples.append((now, self.handled))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()


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


class Engine:
    """The registry of running deliveries: launches, resumes, stops and cancels their tasks."""

    def __init__(self, deps: EngineDeps) -> None:
        self.deps = deps
        self.runs: dict[str, DeliveryRun] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    def launch(self, campaign: campaign_pb2.Campaign) -> None:
        if campaign.id in self._tasks:
            return
        run = DeliveryRun(campaign, self.deps)
        self.runs[campaign.id] = run
        task = asyncio.create_task(run.run(), name=f"delivery:{campaign.id}")
        self._tasks[campaign.id] = task
        task.add_done_callback(lambda _t, cid=campaign.id: self._forget(cid))

    def _forget(self, campaign_id: str) -> None:
        self._tasks.pop(campaign_id, None)
        self.runs.pop(campaign_id, None)

    async def resume_all(self) -> None:
        """Relaunches every in-progress delivery (after a restart or a crash)."""
        async with transaction(self.deps.sessions) as session:
            ids = await store.in_progress_campaign_ids(session)
            rows = await store.get_deliveries(session, ids)
        for row in rows:
            self.launch(campaign_pb2.Campaign.FromString(row.snapshot))
        if rows:
            log.info("resumed deliveries", extra={"count": len(rows)})

    def request_stop(self, campaign_id: str) -> None:
        run = self.runs.get(campaign_id)
        if run is not None:
            run.request_stop()

    def rate(self, campaign_id: str) -> float | None:
        run = self.runs.get(campaign_id)
        return run.rate() if run is not None else None

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
