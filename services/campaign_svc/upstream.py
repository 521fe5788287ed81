"""The campaign service's calls to the segment and delivery services.

Every call carries a deadline; idempotent ones retry UNAVAILABLE a few times (kit.retry). An
outage of a dependency surfaces as `Unavailable` (gRPC UNAVAILABLE), never as INTERNAL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2, delivery_service_pb2, delivery_service_pb2_grpc
from herald.segment.v1 import (directory_pb2, directory_service_pb2, directory_service_pb2_grpc, segment_pb2,
                               segment_service_pb2, segment_service_pb2_grpc)
from services.campaign_svc import reasons as campaign_reasons
from services.kit import reasons
from services.kit.errors import FailedPrecondition, HeraldError, ResourceExhausted, Unavailable
from services.kit.limits import MAX_USERS_PER_CALL
from services.kit.retry import call_idempotent

# Validation and reads wait this long for a dependency before answering UNAVAILABLE.
READ_DEADLINE_S = 10.0
READ_ATTEMPTS = 3
# Fresh read counts are a nicety: a slow delivery service must not slow GetCampaign down much.
READ_COUNT_DEADLINE_S = 2.0
SEGMENT_LOOKUPS_AT_ONCE = 16

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")

UNAVAILABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# How the delivery service refuses a campaign snapshot (see delivery_refusal).
REFUSAL_CODES = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
                 grpc.StatusCode.RESOURCE_EXHAUSTED)


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in UNAVAILABLE_CODES


def delivery_refusal(exc: grpc.aio.AioRpcError) -> HeraldError:
    """The delivery service's refusal of a campaign snapshot, in this service's terms: the monthly
    capacity used up (RESOURCE_EXHAUSTED CAPACITY_EXHAUSTED, with the upstream's retry delay), or
    any other reason (FAILED_PRECONDITION DELIVERY_REFUSED: the snapshot of a campaign stored
    under older rules). Never the caller's INVALID_ARGUMENT: the request was checked here first."""
    details = exc.details() or str(exc.code())
    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ResourceExhausted(f"the delivery service refused the campaign: {details}",
                                 reason=campaign_reasons.CAPACITY_EXHAUSTED, retry_after_s=_retry_after_s(exc))
    return FailedPrecondition(f"the delivery service refused the campaign: {details}",
                              reason=campaign_reasons.DELIVERY_REFUSED)


def _retry_after_s(exc: grpc.aio.AioRpcError) -> float | None:
    """The delay of the upstream's google.rpc.RetryInfo, passed on to our caller."""
    # The sync decoder (the aio one raises TypeError); it reads only what AioRpcError has too.
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToNanoseconds() / 1e9
    return None


class Upstream:
    """Typed calls over the stubs of segment_svc (directory, segments) and delivery_svc."""

    def connect(self, segment_channel: grpc.aio.Channel, delivery_channel: grpc.aio.Channel) -> None:
        """Binds the stubs (channels belong to the running event loop, so this happens late)."""
        self.directory = directory_service_pb2_grpc.DirectoryServiceStub(segment_channel)
        self.segments = segment_service_pb2_grpc.SegmentServiceStub(segment_channel)
        self.delivery = delivery_service_pb2_grpc.DeliveryServiceStub(delivery_channel)

    # --- directory and segments ---------------------------------------------------------------

    async def get_users(self, ids: Iterable[str]) -> dict[str, directory_pb2.User]:
        """The users that exist among `ids`, by id."""
        ids = list(dict.fromkeys(i for i in ids if i))
        found: dict[str, directory_pb2.User] = {}
        for start in range(0, len(ids), MAX_USERS_PER_CALL):
            request = directory_service_pb2.GetUsersRequest(ids=ids[start:start + MAX_USERS_PER_CALL])
            response = await self._read(self.directory.GetUsers, request, "segment")
            found.update((user.id, user) for user in response.users)
        return found

    async def get_segment(self, segment_id: str) -> segment_pb2.Segment | None:
        """The live segment, or None when it does not exist (or was deleted)."""
        try:
            response = await self._read(self.segments.GetSegment,
                                        segment_service_pb2.GetSegmentRequest(id=segment_id), "segment")
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        segment = response.segment
        return None if segment.HasField("deleted_at") else segment

    async def get_segments(self, segment_ids: Sequence[str]) -> dict[str, segment_pb2.Segment]:
        limit = asyncio.Semaphore(SEGMENT_LOOKUPS_AT_ONCE)

        async def one(segment_id: str) -> tuple[str, segment_pb2.Segment | None]:
            async with limit:
                return segment_id, await self.get_segment(segment_id)

        pairs = await asyncio.gather(*(one(s) for s in dict.fromkeys(segment_ids)))
        return {segment_id: segment for segment_id, segment in pairs if segment is not None}

    async def count_recipients(self, segment_ids: Sequence[str], user_ids: Sequence[str], sender_id: str) -> int:
        """The audience's size as StreamRecipients will walk it; FailedPrecondition when the
        segment service refuses it (a segment deleted since the campaign was written)."""
        request = segment_service_pb2.CountRecipientsRequest(segment_ids=segment_ids, user_ids=user_ids,
                                                            sender_id=sender_id)
        try:
            response = await self._read(self.segments.CountRecipients, request, "segment")
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise FailedPrecondition(f"the audience cannot be counted: {exc.details()}",
                                         reason=campaign_reasons.AUDIENCE_UNCOUNTABLE) from None
            raise
        return response.count

    # --- delivery -----------------------------------------------------------------------------

    async def start_delivery(self, campaign: campaign_pb2.Campaign) -> delivery_pb2.Delivery:
        request = delivery_service_pb2.StartDeliveryRequest(campaign=campaign)
        return (await call_idempotent(self.delivery.StartDelivery, request, attempts=READ_ATTEMPTS)).delivery

    async def pause_delivery(self, campaign_id: str) -> delivery_pb2.Delivery:
        request = delivery_service_pb2.PauseDeliveryRequest(campaign_id=campaign_id)
        return (await call_idempotent(self.delivery.PauseDelivery, request, attempts=READ_ATTEMPTS)).delivery

    async def stop_delivery(self, campaign_id: str, reason: campaign_pb2.StopReason,
                            message: str = "") -> delivery_pb2.Delivery:
        request = delivery_service_pb2.StopDeliveryRequest(campaign_id=campaign_id, reason=reason, message=message)
        return (await call_idempotent(self.delivery.StopDelivery, request, attempts=READ_ATTEMPTS)).delivery

    async def get_delivery(self, campaign_id: str, *, timeout: float = READ_DEADLINE_S) -> delivery_pb2.Delivery | None:
        try:
            response = await self.delivery.GetDelivery(
                delivery_service_pb2.GetDeliveryRequest(campaign_id=campaign_id), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return response.delivery

    async def batch_get_deliveries(self, campaign_ids: Sequence[str], *,
                                   timeout: float = READ_COUNT_DEADLINE_S) -> dict[str, delivery_pb2.Delivery]:
        if not campaign_ids:
            return {}
        response = await self.delivery.BatchGetDeliveries(
            delivery_service_pb2.BatchGetDeliveriesRequest(campaign_ids=list(campaign_ids)), timeout=timeout)
        return {d.campaign_id: d for d in response.deliveries}

    def watch_delivery(self, campaign_id: str) -> grpc.aio.UnaryStreamCall[
            delivery_service_pb2.WatchDeliveryRequest, delivery_service_pb2.WatchDeliveryResponse]:
        return self.delivery.WatchDelivery(delivery_service_pb2.WatchDeliveryRequest(campaign_id=campaign_id))

    async def get_usage(self, month: str) -> delivery_service_pb2.GetUsageResponse:
        """The month's messages and capacity as the delivery service counts and enforces them."""
        return await self._read(self.delivery.GetUsage, delivery_service_pb2.GetUsageRequest(month=month), "delivery")

    async def preview_delivery(self, campaign: campaign_pb2.Campaign, receiver_id: str,
                               cid: str) -> campaign_pb2.CampaignPreview:
        request = delivery_service_pb2.PreviewDeliveryRequest(campaign=campaign, receiver_id=receiver_id, cid=cid)
        return (await self._hand_over(self.delivery.PreviewDelivery, request)).preview

    async def send_test_delivery(self, campaign: campaign_pb2.Campaign, user_ids: Sequence[str],
                                 cids: Sequence[str], request_id: str) -> list[campaign_pb2.CampaignPreview]:
        """Retried on UNAVAILABLE like a read: the request_id makes it idempotent."""
        request = delivery_service_pb2.SendTestDeliveryRequest(campaign=campaign, user_ids=user_ids, cids=cids,
                                                               request_id=request_id)
        return list((await self._hand_over(self.delivery.SendTestDelivery, request)).recipients)

    async def publish_event(self, event: delivery_pb2.Event) -> None:
        await call_idempotent(self.delivery.PublishEvent, delivery_service_pb2.PublishEventRequest(event=event),
                              attempts=READ_ATTEMPTS)

    # --- helpers ------------------------------------------------------------------------------

    @classmethod
    async def _hand_over(cls, rpc: grpc.aio.UnaryUnaryMultiCallable[_Request, _Response],
                         request: _Request) -> _Response:
        """A delivery call that hands over a campaign snapshot: its refusal is delivery_refusal."""
        try:
            return await cls._read(rpc, request, "delivery")
        except grpc.aio.AioRpcError as exc:
            if exc.code() in REFUSAL_CODES:
                raise delivery_refusal(exc) from None
            raise

    @staticmethod
    async def _read(rpc: grpc.aio.UnaryUnaryMultiCallable[_Request, _Response], request: _Request,
                    service: str) -> _Response:
        try:
            return await call_idempotent(rpc, request, timeout=READ_DEADLINE_S, attempts=READ_ATTEMPTS)
        except grpc.aio.AioRpcError as exc:
            if is_outage(exc):
                raise Unavailable(f"the {service} service is unavailable; retry",
                                  reason=reasons.DEPENDENCY_UNAVAILABLE) from None
            raise
