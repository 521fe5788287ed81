"""gRPC handlers of the delivery service: parse and validate, call the rules, convert."""

from __future__ import annotations

import grpc

from herald.delivery.v1 import delivery_service_pb2, delivery_service_pb2_grpc
from herald.delivery.v1 import message_service_pb2, message_service_pb2_grpc
from services.delivery_svc.dead_letters import DeadLetters
from services.delivery_svc.deliveries import Deliveries
from services.delivery_svc.messages import Messages
from services.delivery_svc.outbox import Outbox
from services.kit.filters import request_filter


class DeliveryServiceServicer(delivery_service_pb2_grpc.DeliveryServiceServicer):
    """Handlers of herald.delivery.v1.DeliveryService."""

    def __init__(self, deliveries: Deliveries, outbox: Outbox) -> None:
        self.deliveries = deliveries
        self.outbox = outbox

    async def StartDelivery(self, request, context):
        delivery = await self.deliveries.start(request.campaign)
        return delivery_service_pb2.StartDeliveryResponse(delivery=delivery)

    async def StopDelivery(self, request, context):
        delivery = await self.deliveries.stop(request.campaign_id, request.reason, request.message)
        return delivery_service_pb2.StopDeliveryResponse(delivery=delivery)

    async def GetDelivery(self, request, context):
        return delivery_service_pb2.GetDeliveryResponse(delivery=await self.deliveries.get(request.campaign_id))

    async def BatchGetDeliveries(self, request, context):
        deliveries = await self.deliveries.batch_get(list(request.campaign_ids))
        return delivery_service_pb2.BatchGetDeliveriesResponse(deliveries=deliveries)

    async def WatchDelivery(self, request, context):
        async for delivery in self.deliveries.watch(request.campaign_id):
            yield delivery_service_pb2.WatchDeliveryResponse(delivery=delivery)

    async def QueryRecipients(self, request, context):
        recipients, next_, prev = await self.deliveries.query_recipients(
            request_filter(request), list(request.sort), request.limit, request.next, request.prev)
        return delivery_service_pb2.QueryRecipientsResponse(recipients=recipients, next=next_, prev=prev)

    async def PublishEvent(self, request, context):
        event = await self.deliveries.publish_event(request.event)
        # With its sequence: the position the sequencer gives it once committed.
        return delivery_service_pb2.PublishEventResponse(event=await self.outbox.positioned(event.id))


class MessageServiceServicer(message_service_pb2_grpc.MessageServiceServicer):
    """Handlers of herald.delivery.v1.MessageService (SubscribeEvents: a later issue)."""

    def __init__(self, messages: Messages, dead_letters: DeadLetters, *, vapid_public_key: str) -> None:
        self.messages = messages
        self.dead_letters = dead_letters
        self.vapid_public_key = vapid_public_key

    async def QueryMessages(self, request, context):
        messages, next_, prev = await self.messages.query(
            request_filter(request), list(request.sort), request.limit, request.next, request.prev)
        return message_service_pb2.QueryMessagesResponse(messages=messages, next=next_, prev=prev)

    async def MarkRead(self, request, context):
        marked = await self.messages.mark_read(request.user_id, request.cid)
        return message_service_pb2.MarkReadResponse(marked_count=marked)

    async def GetPushConfig(self, request: message_service_pb2.GetPushConfigRequest,
                            context: grpc.aio.ServicerContext) -> message_service_pb2.GetPushConfigResponse:
        return message_service_pb2.GetPushConfigResponse(vapid_public_key=self.vapid_public_key)

    async def QueryDeadLetters(self, request: message_service_pb2.QueryDeadLettersRequest,
                               context: grpc.aio.ServicerContext) -> message_service_pb2.QueryDeadLettersResponse:
        letters, next_, prev = await self.dead_letters.query(
            request_filter(request), list(request.sort), request.limit, request.next, request.prev)
        return message_service_pb2.QueryDeadLettersResponse(dead_letters=letters, next=next_, prev=prev)

    async def ReplayDeadLetters(self, request: message_service_pb2.ReplayDeadLettersRequest,
                                context: grpc.aio.ServicerContext) -> message_service_pb2.ReplayDeadLettersResponse:
        replayed = await self.dead_letters.replay(list(request.ids), request.all, request_filter(request))
        return message_service_pb2.ReplayDeadLettersResponse(replayed_count=replayed)
