"""gRPC handlers of the delivery service: parse and validate, call the rules, convert."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from herald.delivery.v1 import delivery_service_pb2 as ds
from herald.delivery.v1 import delivery_service_pb2_grpc
from herald.delivery.v1 import message_service_pb2 as ms
from herald.delivery.v1 import message_service_pb2_grpc
from services.delivery_svc import convert
from services.delivery_svc.dead_letters import DeadLetters
from services.delivery_svc.deliveries import Deliveries
from services.delivery_svc.messages import Messages
from services.delivery_svc.outbox import Outbox
from services.delivery_svc.preview import Previews
from services.delivery_svc.subscriptions import AFTER_SEQUENCE_HEADER, Subscriptions
from services.delivery_svc.testsend import TestSends
from services.delivery_svc.usage import Usage
from services.kit.filters import request_filter
from services.kit.tracing import bind_campaign


class DeliveryServiceServicer(delivery_service_pb2_grpc.DeliveryServiceServicer):
    """Handlers of herald.delivery.v1.DeliveryService."""

    def __init__(self, deliveries: Deliveries, outbox: Outbox, usage: Usage, previews: Previews,
                 test_sends: TestSends) -> None:
        self.deliveries = deliveries
        self.outbox = outbox
        self.usage = usage
        self.previews = previews
        self.test_sends = test_sends

    async def StartDelivery(self, request: ds.StartDeliveryRequest,
                            context: grpc.aio.ServicerContext) -> ds.StartDeliveryResponse:
        bind_campaign(request.campaign.id)  # the run it launches inherits it
        delivery = await self.deliveries.start(request.campaign)
        return ds.StartDeliveryResponse(delivery=delivery)

    async def PauseDelivery(self, request: ds.PauseDeliveryRequest,
                            context: grpc.aio.ServicerContext) -> ds.PauseDeliveryResponse:
        bind_campaign(request.campaign_id)
        return ds.PauseDeliveryResponse(delivery=await self.deliveries.pause(request.campaign_id))

    async def StopDelivery(self, request: ds.StopDeliveryRequest,
                           context: grpc.aio.ServicerContext) -> ds.StopDeliveryResponse:
        bind_campaign(request.campaign_id)
        delivery = await self.deliveries.stop(request.campaign_id, request.reason, request.message)
        return ds.StopDeliveryResponse(delivery=delivery)

    async def GetDelivery(self, request: ds.GetDeliveryRequest,
                          context: grpc.aio.ServicerContext) -> ds.GetDeliveryResponse:
        bind_campaign(request.campaign_id)
        return ds.GetDeliveryResponse(delivery=await self.deliveries.get(request.campaign_id))

    async def BatchGetDeliveries(self, request: ds.BatchGetDeliveriesRequest,
                                 context: grpc.aio.ServicerContext) -> ds.BatchGetDeliveriesResponse:
        deliveries = await self.deliveries.batch_get(list(request.campaign_ids))
        return ds.BatchGetDeliveriesResponse(deliveries=deliveries)

    async def WatchDelivery(self, request: ds.WatchDeliveryRequest,
                            context: grpc.aio.ServicerContext) -> AsyncIterator[ds.WatchDeliveryResponse]:
        bind_campaign(request.campaign_id)
        async for delivery in self.deliveries.watch(request.campaign_id):
            yield ds.WatchDeliveryResponse(delivery=delivery)

    async def QueryRecipients(self, request: ds.QueryRecipientsRequest,
                              context: grpc.aio.ServicerContext) -> ds.QueryRecipientsResponse:
        recipients, next_, prev = await self.deliveries.query_recipients(
            request_filter(request), list(request.sort), request.limit, request.next, request.prev)
        return ds.QueryRecipientsResponse(recipients=recipients, next=next_, prev=prev)

    async def PublishEvent(self, request: ds.PublishEventRequest,
                           context: grpc.aio.ServicerContext) -> ds.PublishEventResponse:
        event = await self.deliveries.publish_event(request.event)
        # With its sequence: the position the sequencer gives it once committed.
        return ds.PublishEventResponse(event=await self.outbox.positioned(event.id))

    async def GetUsage(self, request: ds.GetUsageRequest, context: grpc.aio.ServicerContext) -> ds.GetUsageResponse:
        return convert.usage(await self.usage.of_month(request.month))

    async def PreviewDelivery(self, request: ds.PreviewDeliveryRequest,
                              context: grpc.aio.ServicerContext) -> ds.PreviewDeliveryResponse:
        bind_campaign(request.campaign.id)
        preview = await self.previews.preview(request.campaign, request.receiver_id, request.cid)
        return ds.PreviewDeliveryResponse(preview=preview)

    async def SendTestDelivery(self, request: ds.SendTestDeliveryRequest,
                               context: grpc.aio.ServicerContext) -> ds.SendTestDeliveryResponse:
        bind_campaign(request.campaign.id)
        recipients = await self.test_sends.send(request.campaign, list(request.user_ids), list(request.cids),
                                                request.request_id)
        return ds.SendTestDeliveryResponse(recipients=recipients)


class MessageServiceServicer(message_service_pb2_grpc.MessageServiceServicer):
    """Handlers of herald.delivery.v1.MessageService."""

    def __init__(self, messages: Messages, dead_letters: DeadLetters, subscriptions: Subscriptions, *,
                 vapid_public_key: str) -> None:
        self.messages = messages
        self.dead_letters = dead_letters
        self.subscriptions = subscriptions
        self.vapid_public_key = vapid_public_key

    async def QueryMessages(self, request: ms.QueryMessagesRequest,
                            context: grpc.aio.ServicerContext) -> ms.QueryMessagesResponse:
        messages, next_, prev = await self.messages.query(
            request_filter(request), list(request.sort), request.limit, request.next, request.prev)
        return ms.QueryMessagesResponse(messages=messages, next=next_, prev=prev)

    async def MarkRead(self, request: ms.MarkReadRequest, context: grpc.aio.ServicerContext) -> ms.MarkReadResponse:
        marked = await self.messages.mark_read(request.user_id, request.cid)
        return ms.MarkReadResponse(marked_count=marked)

    async def SubscribeEvents(self, request: ms.SubscribeEventsRequest,
                              context: grpc.aio.ServicerContext) -> AsyncIterator[ms.SubscribeEventsResponse]:
        subscription = await self.subscriptions.open(list(request.user_ids), request.after_sequence,
                                                     list(request.types))
        # The headers tell the client the subscription holds, and from where: every event after
        # that sequence comes on this stream (with 0, the head it started at: a resume point
        # before any event came).
        await context.send_initial_metadata(((AFTER_SEQUENCE_HEADER, str(subscription.start)),))
        async for event in self.subscriptions.events(subscription):
            yield ms.SubscribeEventsResponse(event=event)

    async def GetPushConfig(self, request: ms.GetPushConfigRequest,
                            context: grpc.aio.ServicerContext) -> ms.GetPushConfigResponse:
        return ms.GetPushConfigResponse(vapid_public_key=self.vapid_public_key)

    async def QueryDeadLetters(self, request: ms.QueryDeadLettersRequest,
                               context: grpc.aio.ServicerContext) -> ms.QueryDeadLettersResponse:
        letters, next_, prev = await self.dead_letters.query(
            request_filter(request), list(request.sort), request.limit, request.next, request.prev)
        return ms.QueryDeadLettersResponse(dead_letters=letters, next=next_, prev=prev)

    async def ReplayDeadLetters(self, request: ms.ReplayDeadLettersRequest,
                                context: grpc.aio.ServicerContext) -> ms.ReplayDeadLettersResponse:
        replayed = await self.dead_letters.replay(list(request.ids), request.all, request_filter(request))
        return ms.ReplayDeadLettersResponse(replayed_count=replayed)
