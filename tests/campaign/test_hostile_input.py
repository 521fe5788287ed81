"""Hostile values through the real campaign service (DESIGN §10.3): non-finite numbers in
templates, timestamps outside 0001..9999 or at its very ends, filters past their budgets, cursors
not made here. Each is INVALID_ARGUMENT naming the field, or a normal answer, never INTERNAL."""

from __future__ import annotations

import math

import grpc
import pytest
from google.protobuf import timestamp_pb2

from herald.campaign.v1 import campaign_service_pb2 as cs
from herald.common.v1 import common_pb2

from campaign.conftest import request, struct
from harness import error_reason, violations

LATEST = timestamp_pb2.Timestamp(seconds=253_402_300_799, nanos=999_999_999)  # 9999-12-31T23:59:59.999999999Z


async def _refused(call, field: str, reason: str = "INVALID_ARGUMENT") -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    exc = caught.value
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
    assert violations(exc) == [field], exc.details()
    assert error_reason(exc) == ("campaign.herald", reason), exc.details()


async def test_a_non_finite_number_in_a_template_is_refused(env):
    template = common_pb2.MessageTemplate(text="Hi", custom=struct({"score": 1}))
    template.attachments.add().update({"size": math.inf})
    await _refused(env.client.CreateCampaign(request(message_template=template)),
                   "message_template.attachments[0].size")
    channel = common_pb2.ChannelTemplate(type="messaging", custom=struct({"w": [math.nan]}))
    await _refused(env.client.CreateCampaign(request(channel_template=channel)), "channel_template.custom.w[0]")


@pytest.mark.parametrize("fields,field", [
    ({"scheduled_for": timestamp_pb2.Timestamp(seconds=253_402_300_800)}, "scheduled_for"),
    ({"scheduled_for": timestamp_pb2.Timestamp(seconds=-62_135_596_801)}, "scheduled_for"),
    ({"stop_at": timestamp_pb2.Timestamp(seconds=1, nanos=-5)}, "stop_at.nanos"),
    ({"stop_at": timestamp_pb2.Timestamp(seconds=2 ** 62)}, "stop_at"),
], ids=["after-9999", "before-0001", "negative-nanos", "huge"])
async def test_out_of_range_timestamps_are_refused(env, fields, field):
    created = (await env.client.CreateCampaign(request())).campaign
    await _refused(env.client.StartCampaign(cs.StartCampaignRequest(id=created.id, **fields)), field)


async def test_the_last_moment_of_9999_is_a_time_like_any_other(env):
    created = (await env.client.CreateCampaign(request())).campaign
    before = timestamp_pb2.Timestamp(seconds=LATEST.seconds - 1)
    started = (await env.client.StartCampaign(cs.StartCampaignRequest(id=created.id, scheduled_for=before,
                                                                       stop_at=LATEST))).campaign
    assert started.scheduled_for.ToDatetime().year == 9999
    other = (await env.client.CreateCampaign(request())).campaign
    earliest = timestamp_pb2.Timestamp(seconds=-62_135_596_800)  # 0001-01-01: past, so now
    await env.client.StartCampaign(cs.StartCampaignRequest(id=other.id, scheduled_for=earliest))


@pytest.mark.parametrize("filter_,field", [
    ({"$or": [{"$and": [{"$or": [{"name": "x"}]}]}]}, None),
    ({"status": {"$in": ["draft"] * 10_001}}, "filter.status.$in"),
    ({"$or": [{"name": f"n{i}"} for i in range(101)]}, "filter.$or"),
    ({"created_at": {"$gte": "9999-12-31T23:59:59-05:00"}}, "filter.created_at.$gte"),
    ({"name": {"$gt": math.nan}}, "filter.name.$gt"),
], ids=["within", "in-10001", "clauses-101", "datetime-past-9999", "nan"])
async def test_query_filters_past_a_budget_are_refused(env, filter_, field):
    call = env.client.QueryCampaigns(cs.QueryCampaignsRequest(filter=struct(filter_)))
    if field is None:
        await call
    else:
        await _refused(call, field, "INVALID_ARGUMENT" if field.endswith("$gt") else "INVALID_FILTER")


async def test_query_cursors_not_made_here_are_refused(env):
    for _ in range(2):
        await env.client.CreateCampaign(request())
    first = await env.client.QueryCampaigns(cs.QueryCampaignsRequest(limit=1))
    assert first.next
    await env.client.QueryCampaigns(cs.QueryCampaignsRequest(limit=1, next=first.next))
    for cursor in ["x", first.next.partition(".")[0], first.next + "A"]:
        await _refused(env.client.QueryCampaigns(cs.QueryCampaignsRequest(limit=1, next=cursor)), "next",
                       "CURSOR_INVALID")
