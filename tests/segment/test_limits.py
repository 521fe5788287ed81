"""Every limit of the audience and channel RPCs, exceeded by one: INVALID_ARGUMENT naming exactly
the field (and, where cheap, the limit itself accepted)."""

from __future__ import annotations

import grpc
import pytest

from harness import violations

from .conftest import expect_error
from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, segment_service_pb2 as ss

MAX_ID, MAX_TYPE, MAX_CID, MAX_TEAM = 255, 64, 64 + 1 + 255, 1000


async def _rejected(call, field: str) -> None:
    """Awaits `call` (or drains a stream) expecting INVALID_ARGUMENT that names only `field`."""
    exc = await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT, field, reason="INVALID_ARGUMENT")
    assert violations(exc) == [field], exc.details()


async def _accepted(call) -> None:
    if hasattr(call, "__aiter__"):
        async for _ in call:
            pass
    else:
        await call


def _channel(**fields) -> ds.UpsertChannelsRequest:
    fields = {"type": "t", "id": "x", **fields}
    return ds.UpsertChannelsRequest(channels=[directory_pb2.Channel(**fields)])


@pytest.mark.parametrize("field,over,at_limit", [
    ("channels[0].id", {"id": "x" * (MAX_ID + 1)}, {"id": "x" * MAX_ID}),
    ("channels[0].type", {"type": "t" * (MAX_TYPE + 1)}, {"type": "t" * MAX_TYPE}),
    ("channels[0].type", {"type": "a:b"}, {"type": "a-b"}),
    ("channels[0].team", {"team": "x" * (MAX_TEAM + 1)}, {"team": "x" * MAX_TEAM}),
], ids=["id-256", "type-65", "type-colon", "team-1001"])
async def test_upsert_channels_limits(svc, field, over, at_limit):
    await _rejected(svc.directory.UpsertChannels(_channel(**over)), field)
    await _accepted(svc.directory.UpsertChannels(_channel(**at_limit)))


@pytest.mark.parametrize("field,over,at_limit", [
    ("segment_ids", lambda seg: {"segment_ids": [seg] * 26}, lambda seg: {"segment_ids": [seg] * 25}),
    ("user_ids", lambda seg: {"user_ids": ["u"] * 10_001}, lambda seg: {"user_ids": ["u"] * 10_000}),
], ids=["segment_ids-26", "user_ids-10001"])
async def test_count_recipients_limits(svc, field, over, at_limit):
    seg = await svc.segment()
    await _rejected(svc.segments.CountRecipients(ss.CountRecipientsRequest(**over(seg))), field)
    await _accepted(svc.segments.CountRecipients(ss.CountRecipientsRequest(**at_limit(seg))))


@pytest.mark.parametrize("field,over,at_limit", [
    ("cursor", {"cursor": "c" * (MAX_CID + 1)}, {"cursor": "c" * MAX_CID}),
    ("batch_size", {"batch_size": 10_001}, {"batch_size": 10_000}),
    ("batch_size", {"batch_size": -1}, {"batch_size": 0}),
], ids=["cursor-321", "batch_size-10001", "batch_size-negative"])
async def test_stream_recipients_limits(svc, field, over, at_limit):
    stream = svc.segments.StreamRecipients
    await _rejected(stream(ss.StreamRecipientsRequest(user_ids=["u"], **over)), field)
    await _accepted(stream(ss.StreamRecipientsRequest(user_ids=["u"], **at_limit)))


async def test_segment_target_exists_limits(svc):
    seg = await svc.segment(type=2)
    exists = svc.segments.SegmentTargetExists
    await _rejected(exists(ss.SegmentTargetExistsRequest(id=seg, target_id="t:" + "x" * (MAX_CID - 1))), "target_id")
    await _accepted(exists(ss.SegmentTargetExistsRequest(id=seg, target_id="t:" + "x" * (MAX_CID - 2))))


def _spec(receiver: str = "a", **fields) -> ds.ChannelSpec:
    return ds.ChannelSpec(recipient_id=receiver, receiver_id=receiver, type="messaging", **fields)


def _members(n: int) -> list[common_pb2.ChannelMemberTemplate]:
    return [common_pb2.ChannelMemberTemplate(user_id=f"m{i}") for i in range(n)]


# The accepted side of the member and spec counts (1,000 and 10,000) is in test_ensure.py.
@pytest.mark.parametrize("field,specs,at_limit", [
    ("channels[0].team", lambda: [_spec(team="x" * (MAX_TEAM + 1))], lambda: [_spec(team="x" * MAX_TEAM)]),
    ("channels[0].members", lambda: [_spec(members=_members(1001))], None),
    ("channels", lambda: [_spec(f"u{i}") for i in range(10_001)], None),
], ids=["team-1001", "members-1001", "specs-10001"])
async def test_ensure_channels_limits(svc, field, specs, at_limit):
    def request(channels):
        return ds.EnsureChannelsRequest(campaign_id="c", sender_id="s", channels=channels)

    await _rejected(svc.directory.EnsureChannels(request(specs())), field)
    if at_limit is not None:
        await _accepted(svc.directory.EnsureChannels(request(at_limit())))
