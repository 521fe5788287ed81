"""One pass of a delivery run from its checkpoint: a producer streams recipient batches and
prepares them while the writer writes the previous one.

Preparing a batch: address it, send its one EnsureChannels call, and once that answers compose
its rows. The next batch's EnsureChannels is already on its way while this one is composed, so
the segment service always has a batch to work on; at most BATCHES_IN_FLIGHT batches are held
at once, which bounds memory. A batch is always either `ahead` (addressed, its channels being
ensured) or `ready` (composed), moved between the two without an await, so when a pass ends
without writing everything it finds every batch whose channels were ensured, and hands the
channels those created to the run to settle (`unsettled`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from herald.campaign.v1 import campaign_pb2
from herald.segment.v1 import directory_service_pb2
from services.delivery_svc.addressing import AddressedRecipients, Addressing
from services.delivery_svc.compose import Composer
from services.delivery_svc.outcomes import CreatedChannel, PreparedBatch, created_channels
from services.delivery_svc.pacing import Pacer
from services.delivery_svc.upstream import SegmentClient, is_resumable

log = logging.getLogger("herald.delivery")

# Batches held at once: one being written, two being addressed (EnsureChannels for the next one
# already sent while this one's messages are composed).
BATCHES_IN_FLIGHT = 3
ENSURES_IN_FLIGHT = 2


class StopRequested(Exception):
    """A stop was asked for: the pass ends before writing anything more."""


class _Wake:
    """Queued by `wake` for a writer waiting on the next batch."""


_WAKE = _Wake()

# What the producer hands the writer: a batch, the end of the stream (None), its error, or a wake-up.
Ready = PreparedBatch | BaseException | _Wake | None


@dataclass(slots=True)
class AddressedBatch:
    """A streamed batch whose EnsureChannels call is on its way (`ensuring`; None when no
    recipient of it needs a channel)."""

    cursor: str
    recipients: AddressedRecipients
    ensuring: asyncio.Future[directory_service_pb2.EnsureChannelsResponse] | None


class Pipeline:
    def __init__(self, campaign: campaign_pb2.Campaign, segments: SegmentClient, addressing: Addressing,
                 composer: Composer, batch_size: int, unsettled: list[CreatedChannel]) -> None:
        self.campaign = campaign
        self.segments = segments
        self.addressing = addressing
        self.composer = composer
        self.batch_size = batch_size
        self.unsettled = unsettled  # the run's: channels created for batches this pass leaves unwritten
        self._slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        self._ready: asyncio.Queue[Ready] = asyncio.Queue()
        self._ahead: collections.deque[AddressedBatch] = collections.deque()

    def wake(self) -> None:
        """Wakes a writer waiting for the next batch (a stop was asked for)."""
        self._ready.put_nowait(_WAKE)

    async def run(self, cursor: str, write: Callable[[PreparedBatch], Awaitable[None]], pacer: Pacer,
                  stop_requested: asyncio.Event, last: str = "") -> None:
        """Streams from `cursor` and writes batch after batch until the audience (through `last`,
        when given: a partition's end) is done.

        Raises StopRequested once a stop is asked for, or whatever `write` or the segment service
        raised; the channels created for the batches it leaves unwritten are then in `unsettled`
        (but for an error the run resumes after: a later pass replays those batches).
        """
        producer = asyncio.create_task(self._produce(cursor, last))
        try:
            while True:
                item = await self._ready.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, _Wake) or stop_requested.is_set():
                    # Nothing is written once a stop is asked for (the run commits the stop).
                    if isinstance(item, PreparedBatch):
                        self.unsettled.extend(created_channels(item.outcomes))
                    raise StopRequested()
                await write(item)
                self._slots.release()
                if stop_requested.is_set():
                    raise StopRequested()
                await pacer.wait(stop_requested)
        except (asyncio.CancelledError, grpc.aio.AioRpcError) as exc:
            # Shutdown or a resumable outage: the restarted run replays the unwritten batches.
            if not isinstance(exc, grpc.aio.AioRpcError) or is_resumable(exc):
                raise
            self.unsettled.extend(await self._unwritten_channels(producer))
            raise
        except Exception:
            self.unsettled.extend(await self._unwritten_channels(producer))
            raise
        finally:
            producer.cancel()
            calls = [b.ensuring for b in self._ahead if b.ensuring is not None]
            for call in calls:
                call.cancel()
            await asyncio.gather(producer, *calls, return_exceptions=True)

    async def _produce(self, cursor: str, last: str) -> None:
        try:
            async for response in self.segments.stream_recipients(self.campaign, cursor, self.batch_size, last):
                await self._slots.acquire()
                recipients = await self.addressing.templates.off_loop(self.addressing.address, response)
                ensuring = asyncio.ensure_future(self.segments.ensure_channels(self.campaign, recipients.specs)) \
                    if recipients.specs else None
                self._ahead.append(AddressedBatch(response.cursor, recipients, ensuring))
                if len(self._ahead) == ENSURES_IN_FLIGHT:
                    await self._hand_over()
            while self._ahead:
                await self._hand_over()
            self._ready.put_nowait(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 — handed to the writer, which decides
            self._ready.put_nowait(exc)

    async def _hand_over(self) -> None:
        """Composes the oldest batch once its channels are ensured and queues it for the writer.
        Shielded: cancelling the producer must not cancel a call the segment side may commit."""
        batch = self._ahead[0]
        recipients = batch.recipients
        response = await asyncio.shield(batch.ensuring) if batch.ensuring is not None else None
        if response is not None:
            recipients.outcomes.extend(await self.composer.compose(recipients.specs, recipients.contexts, response))
        prepared = PreparedBatch(recipients.outcomes, batch.cursor)
        self._ahead.popleft()
        self._ready.put_nowait(prepared)

    async def _unwritten_channels(self, producer: asyncio.Task[None]) -> list[CreatedChannel]:
        """Stops the producer and returns the channels created for batches that were streamed but
        will not be written, after waiting for the EnsureChannels calls still on their way (the
        segment service may commit a call whatever happens to its caller)."""
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        created: list[CreatedChannel] = []
        while not self._ready.empty():
            item = self._ready.get_nowait()
            if isinstance(item, PreparedBatch):
                created.extend(created_channels(item.outcomes))
        for batch in self._ahead:
            if batch.ensuring is None:
                continue
            try:
                response = await batch.ensuring
            except Exception as exc:  # noqa: BLE001 — the stop goes on without what it created
                log.warning("EnsureChannels failed while stopping; its channels may go uncounted",
                            extra={"campaign_id": self.campaign.id, "error": repr(exc)})
                continue
            created.extend(self.composer.created_channels(batch.recipients.specs, response))
        self._ahead.clear()
        return created
