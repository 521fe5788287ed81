"""Each service names itself in the ErrorInfo.domain of its errors: its own cases and those the
shared runtime raises while serving it (a missing token, a request that cannot be decoded)."""

from __future__ import annotations

import grpc
import pytest

from harness import error_reason, serve_system
from herald.campaign.v1 import campaign_service_pb2 as cs
from herald.delivery.v1 import delivery_service_pb2 as dvs
from herald.segment.v1 import segment_service_pb2 as ss
from services.kit.clients import open_channel

NOT_FOUND_CALLS = {  # service: (method, a request naming nothing that exists, the reason)
    "segment": ("/herald.segment.v1.SegmentService/GetSegment", ss.GetSegmentRequest(id="nope"),
                "SEGMENT_NOT_FOUND"),
    "campaign": ("/herald.campaign.v1.CampaignService/GetCampaign", cs.GetCampaignRequest(id="nope"),
                 "CAMPAIGN_NOT_FOUND"),
    "delivery": ("/herald.delivery.v1.DeliveryService/GetDelivery", dvs.GetDeliveryRequest(campaign_id="nope"),
                 "DELIVERY_NOT_FOUND"),
}
RAW = dict(request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)
GARBAGE = b"\xff\xff\xff"


async def _error(call) -> tuple[grpc.StatusCode, tuple[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), error_reason(caught.value)


async def test_each_service_names_itself_in_its_errors(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path) as system:
        for name, (method, request, reason) in NOT_FOUND_CALLS.items():
            domain = f"{name}.herald"
            call = system.channel(name).unary_unary(method, **RAW)
            assert await _error(call(request.SerializeToString())) == (grpc.StatusCode.NOT_FOUND, (domain, reason))
            assert await _error(call(GARBAGE)) == (grpc.StatusCode.INVALID_ARGUMENT, (domain, "REQUEST_UNDECODABLE"))
            async with open_channel(f"127.0.0.1:{system.servers[name].port}", token=None) as anonymous:
                assert await _error(anonymous.unary_unary(method, **RAW)(request.SerializeToString())) == (
                    grpc.StatusCode.UNAUTHENTICATED, (domain, "TOKEN_MISSING"))


async def test_a_request_stream_with_an_undecodable_message_is_invalid_argument(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path, names=("segment",)) as system:
        import_users = system.channel("segment").stream_unary("/herald.segment.v1.DirectoryService/ImportUsers", **RAW)
        assert await _error(import_users(iter([GARBAGE]))) == (
            grpc.StatusCode.INVALID_ARGUMENT, ("segment.herald", "REQUEST_UNDECODABLE"))
