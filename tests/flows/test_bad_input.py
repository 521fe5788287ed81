"""Malformed ids are INVALID_ARGUMENT naming the field. (Generated requests for every RPC:
tests/fuzz.)"""

from __future__ import annotations

import grpc

from harness import serve_system, violations
from herald.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc
from herald.delivery.v1 import delivery_service_pb2, delivery_service_pb2_grpc
from herald.segment.v1 import segment_service_pb2, segment_service_pb2_grpc


async def test_a_nul_character_in_an_id_is_invalid_argument_naming_the_field(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path) as system:
        segments = segment_service_pb2_grpc.SegmentServiceStub(system.channel("segment"))
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
        deliveries = delivery_service_pb2_grpc.DeliveryServiceStub(system.channel("delivery"))
        for call, field in [
            (segments.DeleteSegment(segment_service_pb2.DeleteSegmentRequest(id="a\x00b")), "id"),
            (campaigns.GetCampaign(campaign_service_pb2.GetCampaignRequest(id="a\x00b")), "id"),
            (deliveries.StopDelivery(delivery_service_pb2.StopDeliveryRequest(campaign_id="\x00")), "campaign_id"),
        ]:
            try:
                await call
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
                assert violations(exc) == [field]
            else:
                raise AssertionError(f"a NUL in {field} was accepted")
