"""The sending engine: one asyncio task per in-progress delivery.

A run counts the audience once, then streams recipient batches from the checkpoint cursor.
Each batch is prepared (channel specs rendered, one EnsureChannels call, messages rendered)
while the previous one is being written, and written in ONE transaction: messages, outcomes,
outbox events, counters and the cursor that covers them. So a crash at any point loses at most
an uncommitted batch, which the restarted run streams and writes again; ids derive from
campaign + target and already-logged targets are filtered out, so nothing is written twice and
the counters equal a clean run's. EnsureChannels is idempotent per (campaign, recipient) on the
segment side, so `created` and thus stats_channels_created are stable across such a replay.

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
from herald.segment.v1 import (directory_service_pb2, directory_service_pb2_grpc, segment_pb2,
                               segment_service_pb2, segment_service_pb2_grpc)
from services.delivery_svc import store
from services.delivery_svc.notifier import Notifier
from services.delivery_svc.render import CampaignTemplates, RecipientFailed, channel_to_dict, user_to_dict
from services.kit.bulk import DriverValues, write_tuples
from services.kit.config import Settings
from services.kit.db import transaction, utcnow
from services.kit.limits import DEFAULT_RECIPIENT_BATCH, MAX_RECIPIENT_BATCH, MAX_STOP_MESSAGE
from services.kit.retry import call_idempotent, is_unavailable, retrying
from services.kit.templates import user_variables

log = logging.getLogger("herald.delivery")

SENT = delivery_pb2.RECIPIENT_STATUS_SENT
SKIPPED = delivery_pb2.RECIPIENT_STATUS_SKIPPED
FAILED = delivery_pb2.RECIPIENT_STATUS_FAILED

USER_NOT_FOUND = "user_not_found"
CHANNEL_NOT_FOUND = "channel_not_found"
CHANNEL_CREATED = "channel.created"

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
    """The run ends without completing: stop requested, capacity reached, or the delivery is no
    longer in progress (then the stop below changes nothing)."""

    def __init__(self, reason: int = campaign_pb2.STOP_REASON_REQUESTED, message: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


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


@dataclass(slots=True)
class AddressedBatch:
    """A streamed batch whose EnsureChannels call is on its way (`ensuring`; None when no
    recipient of it needs a channel)."""
    cursor: str
    outcomes: list[Outcome]
    specs: list
    contexts: list
    ensuring: asyncio.Future | None


# A created channel not yet written: (recipient id, its channel.created event row).
CreatedChannel = tuple[str, tuple]


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
        self.stop_reason, self.stop_message = campaign_pb2.STOP_REASON_REQUESTED, ""
        self._ready: asyncio.Queue | None = None
        # Channels created for batches that will not be written, settled when the run ends.
        self._unsettled: list[CreatedChannel] = []
        self.templates: CampaignTemplates | None = None
        self.sender: dict[str, Any] = {}
        # Users or channels: said by the segment service with each batch; guessed never.
        self.target_kind = "user" if campaign.user_ids else ""
        self.handled = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        settings = deps.settings
        batch_size = max(1, min(settings.delivery_batch_size or DEFAULT_RECIPIENT_BATCH, MAX_RECIPIENT_BATCH))
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
        except _Stopped as stopped:
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

    def request_stop(self, reason: int = campaign_pb2.STOP_REASON_REQUESTED, message: str = "") -> None:
        """Ends the run after the batch being written; the run then commits the stop itself,
        with the channels of the batches it will not write."""
        if not self.stop_requested.is_set():
            self.stop_reason, self.stop_message = reason, message
        self.stop_requested.set()
        if self._ready is not None:
            self._ready.put_nowait(_STOP)

    def _stopped(self) -> _Stopped:
        return _Stopped(self.stop_reason, self.stop_message)

    def rate(self) -> float:
        """Recipients handled per second over the last few seconds."""
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    async def _end(self, reason: int, message: str) -> None:
        """Stops the delivery (unless it is no longer in progress) and, in the same transaction,
        writes the channel.created events and stats_channels_created of the channels created for
        batches that were not written."""
        created = self._unsettled
        async with transaction(self.deps.sessions) as session:
            now = utcnow()
            await store.stop_delivery(session, self.campaign_id, reason, message[:MAX_STOP_MESSAGE], now)
            if created:
                ids = [target_id for target_id, _ in created]
                # Written by an earlier process (a replayed batch): counted then already.
                logged = await store.logged_target_ids(session, self.campaign_id, min(ids), max(ids))
                created = [c for c in created if c[0] not in logged]
                await write_tuples(session, self.values, store.events, store.EVENT_COLUMNS, [e for _, e in created])
                await store.add_progress(session, self.campaign_id, {"channels_created": len(created)}, None, now)
        self._unsettled = []

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
            raise self._stopped()
        self._unsettled = []  # a resumed attempt replays whatever an earlier one left unwritten
        slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        ready: asyncio.Queue = asyncio.Queue()
        ahead: collections.deque[AddressedBatch] = collections.deque()
        producer = asyncio.create_task(self._produce(row.cursor, slots, ready, ahead))
        self._ready = ready
        started = time.monotonic()
        handled_at_start = self.handled
        try:
            while True:
                item = await ready.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                if item is _STOP or self.stop_requested.is_set():
                    # Nothing is written once a stop is asked for (the stop is committed at the end).
                    if isinstance(item, PreparedBatch):
                        self._unsettled.extend(_created_channels(item.outcomes))
                    raise self._stopped()
                await self._write(item)
                slots.release()
                if self.stop_requested.is_set():
                    raise self._stopped()
                await self._pace(started, self.handled - handled_at_start)
        except (asyncio.CancelledError, grpc.aio.AioRpcError) as exc:
            # Shutdown or a resumable outage: the restarted run replays the unwritten batches.
            if not isinstance(exc, grpc.aio.AioRpcError) or _resumable(exc):
                raise
            self._unsettled.extend(await self._unwritten_channels(producer, ready, ahead))
            raise
        except Exception:
            self._unsettled.extend(await self._unwritten_channels(producer, ready, ahead))
            raise
        finally:
            self._ready = None
            producer.cancel()
            calls = [b.ensuring for b in ahead if b.ensuring is not None]
            for call in calls:
                call.cancel()
            await asyncio.gather(producer, *calls, return_exceptions=True)

    async def _unwritten_channels(self, producer: asyncio.Task, ready: asyncio.Queue,
                                  ahead: collections.deque[AddressedBatch]) -> list[CreatedChannel]:
        """Stops the producer and returns the channels created for batches that were streamed but
        will not be written, after waiting for the EnsureChannels calls still on their way (the
        segment service may commit a call whatever happens to its caller)."""
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        created: list[CreatedChannel] = []
        while not ready.empty():
            item = ready.get_nowait()
            if isinstance(item, PreparedBatch):
                created.extend(_created_channels(item.outcomes))
        now = self.values.time(utcnow())
        for batch in ahead:
            if batch.ensuring is None:
                continue
            [response] = await asyncio.gather(batch.ensuring, return_exceptions=True)
            if isinstance(response, BaseException):
                log.warning("EnsureChannels failed while stopping; its channels may go uncounted",
                            extra={"campaign_id": self.campaign_id, "error": repr(response)})
                continue
            for spec, ensured in zip(batch.specs, response.channels):
                if ensured.created:
                    created.append((spec.recipient_id, self._channel_created(
                        ensured, self.values.json(list(ensured.member_ids)),
                        delivery_pb2.Event(channel=ensured.channel).SerializeToString(), now)))
        ahead.clear()
        return created

    async def _produce(self, cursor: str, slots: asyncio.Semaphore, ready: asyncio.Queue,
                       ahead: collections.deque[AddressedBatch]) -> None:
        """Streams batches and prepares them while the writer writes: the next batch's
        EnsureChannels is already on its way while this one's messages are rendered, so the
        segment service always has a batch to work on. A batch is always either in `ahead` or
        in `ready` (moved without an await in between), so a stop finds every ensured one."""
        try:
            request = segment_service_pb2.StreamRecipientsRequest(
                segment_ids=self.campaign.segment_ids, user_ids=self.campaign.user_ids,
                sender_id=self.campaign.sender_id, cursor=cursor, batch_size=self.batch_size)
            stream = self.deps.segments.StreamRecipients(request, timeout=STREAM_DEADLINE_S)
            async for response in stream:
                await slots.acquire()
                outcomes, specs, contexts = self._address(response)
                ensuring = asyncio.ensure_future(self._ensure(specs)) if specs else None
                ahead.append(AddressedBatch(response.cursor, outcomes, specs, contexts, ensuring))
                if len(ahead) == ENSURES_IN_FLIGHT:
                    await self._hand_over(ahead, ready)
            while ahead:
                await self._hand_over(ahead, ready)
            ready.put_nowait(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 — handed to the writer, which decides
            ready.put_nowait(exc)

    async def _hand_over(self, ahead: collections.deque[AddressedBatch], ready: asyncio.Queue) -> None:
        """Renders the oldest batch once its channels are ensured and queues it for the writer.
        Shielded: cancelling the producer must not cancel a call the segment side may commit."""
        batch = ahead[0]
        response = await asyncio.shield(batch.ensuring) if batch.ensuring is not None else None
        if response is not None:
            batch.outcomes.extend(self._render_messages(batch.specs, batch.contexts, response))
        prepared = PreparedBatch(batch.outcomes, batch.cursor)
        ahead.popleft()
        ready.put_nowait(prepared)

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

    def _kind_of(self, response: segment_service_pb2.StreamRecipientsResponse) -> str:
        """Whether the batch's targets are users or channels, as the segment service says; a
        segment service that does not say yet: user_ids audiences are users, and otherwise the
        recipients streamed so far tell (their target oneof)."""
        if response.target_type == segment_pb2.SEGMENT_TYPE_CHANNEL:
            self.target_kind = "channel"
        elif response.target_type == segment_pb2.SEGMENT_TYPE_USER:
            self.target_kind = "user"
        elif not self.target_kind and response.recipients:
            self.target_kind = "channel" if response.recipients[0].WhichOneof("target") == "channel" else "user"
        return self.target_kind or "user"

    def _address(self, response: segment_service_pb2.StreamRecipientsResponse) -> tuple[list, list, list]:
        """Outcomes known at once (skipped, failed), and a channel spec + template context per
        recipient that needs its channel ensured."""
        not_found = CHANNEL_NOT_FOUND if self._kind_of(response) == "channel" else USER_NOT_FOUND
        outcomes = [Outcome(target_id, SKIPPED, not_found) for target_id in response.skipped_ids]
        templates = self.templates
        sender_context = {"sender": self.sender}
        specs: list[directory_service_pb2.ChannelSpec] = []
        contexts: list[dict[str, Any]] = []
        for recipient in response.recipients:
            if recipient.WhichOneof("target") == "channel":
                cid = recipient.channel.cid or recipient.target_id
                specs.append(directory_service_pb2.ChannelSpec(recipient_id=recipient.target_id, cid=cid))
                contexts.append(sender_context)
                continue
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
                outcome.events.append(self._channel_created(ensured, members_json, payload, now))
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

    def _channel_created(self, ensured: directory_service_pb2.EnsuredChannel, members_json: str, payload: bytes,
                         now: Any) -> tuple:
        """The channel.created event row (store.EVENT_COLUMNS) of a channel the campaign created."""
        campaign_id = self.campaign_id
        return (f"channel.created:{campaign_id}:{ensured.cid}", CHANNEL_CREATED, campaign_id, ensured.cid, "",
                members_json, payload, now)

    async def _write(self, batch: PreparedBatch) -> None:
        """Writes one batch and its checkpoint in one transaction, or nothing at all."""
        campaign_id = self.campaign_id
        capacity = self.deps.settings.monthly_message_capacity
        capacity_reached = False
        async with transaction(self.deps.sessions) as session:
            now = utcnow()
            if not await store.claim_in_progress(session, campaign_id, now):
                self._unsettled.extend(_created_channels(batch.outcomes))
                raise _Stopped()
            outcomes = batch.outcomes
            if outcomes:
                ids = [o.target_id for o in outcomes]
                logged = await store.logged_target_ids(session, campaign_id, min(ids), max(ids))
                if logged:
                    outcomes = [o for o in outcomes if o.target_id not in logged]
            sent = sum(1 for o in outcomes if o.message is not None)
            unwritten: list[Outcome] = []
            if capacity > 0:
                remaining = max(0, capacity - await store.messages_this_month(session, now))
                if sent > remaining:
                    kept = _within(outcomes, remaining)
                    kept_ids = {o.target_id for o in kept}
                    unwritten = [o for o in outcomes if o.target_id not in kept_ids]
                    outcomes, sent, capacity_reached = kept, remaining, True
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
            # At capacity the checkpoint stays before this batch: the stop and the settling of
            # its unsent rest follow in the run's last transaction (_end); a crash in between
            # replays the batch, whose written part is then filtered out as logged.
            await store.add_progress(session, campaign_id, deltas, None if capacity_reached else batch.cursor, now)
        self.handled += len(outcomes)
        self._sample()
        self.deps.notifier.notify(campaign_id)
        if capacity_reached:
            self._unsettled.extend(_created_channels(unwritten))
            raise _Stopped(campaign_pb2.STOP_REASON_CAPACITY, f"monthly message capacity of {capacity} reached")

    def _sample(self) -> None:
        now = time.monotonic()
        self._samples.append((now, self.handled))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()


def _resumable(exc: grpc.aio.AioRpcError) -> bool:
    """The errors after which a run resumes from its checkpoint (see _send_all)."""
    return exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED or is_unavailable(exc)


def _created_channels(outcomes: list[Outcome]) -> list[CreatedChannel]:
    return [(o.target_id, e) for o in outcomes if o.created for e in o.events if e[1] == CHANNEL_CREATED]


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
        self.deps.notifier.notify(campaign_id)  # watchers wait for the run's end (is_running)

    async def resume_all(self) -> None:
        """Relaunches every in-progress delivery (after a restart or a crash)."""
        async with transaction(self.deps.sessions) as session:
            ids = await store.in_progress_campaign_ids(session)
            rows = await store.get_deliveries(session, ids)
        for row in rows:
            self.launch(campaign_pb2.Campaign.FromString(row.snapshot))
        if rows:
            log.info("resumed deliveries", extra={"count": len(rows)})

    def is_running(self, campaign_id: str) -> bool:
        return campaign_id in self._tasks

    async def stop(self, campaign_id: str, reason: int, message: str, timeout_s: float) -> None:
        """Asks the delivery's run to stop and waits (at most `timeout_s`) until it has ended:
        it commits the stop itself, together with the channels of its unwritten batches."""
        run, task = self.runs.get(campaign_id), self._tasks.get(campaign_id)
        if run is None or task is None:
            return
        run.request_stop(reason, message)
        await asyncio.wait([task], timeout=timeout_s)  # a timeout leaves the run going

    def request_stop(self, campaign_id: str, reason: int, message: str) -> None:
        run = self.runs.get(campaign_id)
        if run is not None:
            run.request_stop(reason, message)

    def rate(self, campaign_id: str) -> float | None:
        run = self.runs.get(campaign_id)
        return run.rate() if run is not None else None

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
