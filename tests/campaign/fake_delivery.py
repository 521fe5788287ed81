"""An in-process stand-in for delivery_svc's DeliveryService, served over a real channel.

It records what campaign_svc asks (StartDelivery, StopDelivery, WatchDelivery, PublishEvent)
and lets a test drive a delivery's progress (`progress`, `complete`, `read`).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt

import grpc
from google.protobuf import timestamp_pb2

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2, delivery_service_pb2 as pb, delivery_service_pb2_grpc
from services.kit.limits import WATCH_MAX_INTERVAL_S

IN_PROGRESS = campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS
COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED
STOPPED = campaign_pb2.CAMPAIGN_STATUS_STOPPED


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt.datetime.now(dt.timezone.utc))
    return ts


class FakeDelivery(delivery_service_pb2_grpc.DeliveryServiceServicer):
    def __init__(self) -> None:
        self.deliveries: dict[str, delivery_pb2.Delivery] = {}
        self.snapshots: dict[str, campaign_pb2.Campaign] = {}
        self.start_calls: list[str] = []
        self.stop_calls: list[pb.StopDeliveryRequest] = []
        self.watch_calls: collections.Counter[str] = collections.Counter()
        self.publish_calls: list[delivery_pb2.Event] = []
        self.events: dict[str, delivery_pb2.Event] = {}
        self.refuse: grpc.StatusCode | None = None  # StartDelivery answers this code
        self.down = False  # every call answers UNAVAILABLE
        self.stop_gate: asyncio.Event | None = None  # StopDelivery waits for it when set
        self.start_gate = asyncio.Event()  # StartDelivery answers once it is set (clear it to hold starts)
        self.start_gate.set()
        self._changed: dict[str, asyncio.Event] = {}
        self._break_generation = 0

    # --- test controls --------------------------------------------------------------------------

    def progress(self, campaign_id: str, **stats) -> None:
        delivery = self.deliveries[campaign_id]
        for name, value in stats.items():
            setattr(delivery.stats, name, value)
        self._touch(campaign_id)

    def complete(self, campaign_id: str, **stats) -> None:
        delivery = self.deliveries[campaign_id]
        total = delivery.stats.recipients_total
        delivery.stats.progress = 1.0
        delivery.stats.stats_users_sent = stats.pop("stats_users_sent", total)
        delivery.stats.stats_messages_sent = stats.pop("stats_messages_sent", total)
        delivery.stats.stats_completed_at.CopyFrom(_now())
        for name, value in stats.items():
            setattr(delivery.stats, name, value)
        delivery.status = COMPLETED
        self._touch(campaign_id)

    def read(self, campaign_id: str, users_read: int) -> None:
        self.progress(campaign_id, stats_users_read=users_read)

    def break_watches(self) -> None:
        """Ends every open WatchDelivery stream with UNAVAILABLE (a restarting delivery service)."""
        self._break_generation += 1
        for campaign_id in list(self.deliveries):
            self._touch(campaign_id)

    def event_types(self, campaign_id: str) -> list[str]:
        return [e.type for e in self.events.values() if e.campaign.id == campaign_id]

    def _touch(self, campaign_id: str) -> None:
        self.deliveries[campaign_id].updated_at.CopyFrom(_now())
        self._changed.setdefault(campaign_id, asyncio.Event()).set()
        self._changed[campaign_id] = asyncio.Event()

    async def _check_up(self, context) -> None:
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "fake delivery is down")

    # --- DeliveryService ------------------------------------------------------------------------

    async def StartDelivery(self, request, context):
        await self._check_up(context)
        campaign = request.campaign
        self.start_calls.append(campaign.id)
        await self.start_gate.wait()
        if self.refuse is not None:
            await context.abort(self.refuse, "monthly message capacity used up")
        if campaign.id not in self.deliveries:
            total = campaign.stats.recipients_total or len(campaign.user_ids) or 10  # as counted at start
            delivery = delivery_pb2.Delivery(
                campaign_id=campaign.id, status=IN_PROGRESS,
                stats=campaign_pb2.CampaignStats(recipients_total=total, stats_started_at=_now()),
                created_at=_now(), updated_at=_now())
            self.deliveries[campaign.id] = delivery
            self.snapshots[campaign.id] = campaign
        return pb.StartDeliveryResponse(delivery=self.deliveries[campaign.id])

    async def StopDelivery(self, request, context):
        await self._check_up(context)
        self.stop_calls.append(request)
        if self.stop_gate is not None:
            await self.stop_gate.wait()
        delivery = self.deliveries.get(request.campaign_id)
        if delivery is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no delivery")
        if delivery.status == COMPLETED:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "delivery is completed")
        if delivery.status == IN_PROGRESS:
            delivery.status = STOPPED
            delivery.stop_reason = request.reason or campaign_pb2.STOP_REASON_REQUESTED
            delivery.stop_message = request.message
            self._touch(request.campaign_id)
        return pb.StopDeliveryResponse(delivery=delivery)

    async def GetDelivery(self, request, context):
        await self._check_up(context)
        delivery = self.deliveries.get(request.campaign_id)
        if delivery is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no delivery")
        return pb.GetDeliveryResponse(delivery=delivery)

    async def BatchGetDeliveries(self, request, context):
        await self._check_up(context)
        return pb.BatchGetDeliveriesResponse(
            deliveries=[self.deliveries[i] for i in request.campaign_ids if i in self.deliveries])

    async def WatchDelivery(self, request, context):
        await self._check_up(context)
        campaign_id = request.campaign_id
        self.watch_calls[campaign_id] += 1
        if campaign_id not in self.deliveries:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no delivery")
        generation = self._break_generation
        while True:
            changed = self._changed.setdefault(campaign_id, asyncio.Event())
            delivery = self.deliveries[campaign_id]
            yield pb.WatchDeliveryResponse(delivery=delivery)
            if delivery.status != IN_PROGRESS:
                return
            try:  # the contract's cadence: at least one update a second while in progress
                await asyncio.wait_for(changed.wait(), WATCH_MAX_INTERVAL_S)
            except TimeoutError:
                pass
            if generation != self._break_generation:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "delivery restarting")

    async def PublishEvent(self, request, context):
        await self._check_up(context)
        event = request.event
        self.publish_calls.append(event)
        stored = self.events.setdefault(event.id, event)
        return pb.PublishEventResponse(event=stored)


async def serve_fake_delivery(fake: FakeDelivery) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    delivery_service_pb2_grpc.add_DeliveryServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port
