"""QueryCampaigns: every filter field and operator, sort directions, keyset paging both ways
across inserts made between pages, limits."""

from __future__ import annotations

import grpc
import pytest

from herald.campaign.v1 import campaign_service_pb2 as cs
from herald.common.v1 import common_pb2

from campaign.conftest import struct
from harness import error_reason, violations


async def query(env, filter=None, sort=(), **fields):
    req = cs.QueryCampaignsRequest(sort=[common_pb2.SortParam(field=f, direction=d) for f, d in sort], **fields)
    if filter is not None:
        req.filter.CopyFrom(struct(filter))
    return await env.client.QueryCampaigns(req)


async def ids(env, filter=None, sort=(("id", 1),), **fields) -> list[str]:
    return [c.id for c in (await query(env, filter, sort, **fields)).campaigns]


@pytest.fixture
async def five(env):
    """c1..c5 created a minute apart; c1 c2 target segment A, c3 segments A and B, c4 is
    started, c5 scheduled; c5 has sender u1."""
    seg_a = await env.segment(targets=["u1"], id="seg-a")
    seg_b = await env.segment(targets=["u2"], id="seg-b")
    audiences = {"c1": [seg_a], "c2": [seg_a], "c3": [seg_a, seg_b], "c4": None, "c5": None}
    for i, (campaign_id, segments) in enumerate(audiences.items(), start=1):
        fields = {"segment_ids": segments} if segments else {}
        await env.create(id=campaign_id, name=f"name {i}", sender_id="u1" if i == 5 else "sender", **fields)
        env.clock.advance(60)
    await env.start_campaign("c4")
    env.clock.advance(1)
    from campaign.test_lifecycle import later
    await env.start_campaign("c5", scheduled_for=later(env, 3600))
    return env


FILTER_CASES = [
    ({}, ["c1", "c2", "c3", "c4", "c5"]),
    ({"id": "c2"}, ["c2"]),
    ({"id": {"$eq": "c2"}}, ["c2"]),
    ({"id": {"$ne": "c2"}}, ["c1", "c3", "c4", "c5"]),
    ({"id": {"$in": ["c1", "c5", "zz"]}}, ["c1", "c5"]),
    ({"id": {"$nin": ["c1", "c5"]}}, ["c2", "c3", "c4"]),
    ({"id": {"$gt": "c3"}}, ["c4", "c5"]),
    ({"id": {"$gte": "c3"}}, ["c3", "c4", "c5"]),
    ({"id": {"$lt": "c3"}}, ["c1", "c2"]),
    ({"id": {"$lte": "c3"}}, ["c1", "c2", "c3"]),
    ({"id": {"$exists": True}}, ["c1", "c2", "c3", "c4", "c5"]),
    ({"name": "name 3"}, ["c3"]),
    ({"name": {"$in": ["name 1", "name 4"]}}, ["c1", "c4"]),
    ({"sender_id": "u1"}, ["c5"]),
    ({"sender_id": {"$in": ["sender"]}}, ["c1", "c2", "c3", "c4"]),
    ({"status": "draft"}, ["c1", "c2", "c3"]),
    ({"status": "CAMPAIGN_STATUS_IN_PROGRESS"}, ["c4"]),
    ({"status": 2}, ["c5"]),
    ({"status": {"$in": ["scheduled", "in_progress"]}}, ["c4", "c5"]),
    ({"status": {"$ne": "draft"}}, ["c4", "c5"]),
    ({"segments": "seg-b"}, ["c3"]),
    ({"segments": {"$eq": "seg-a"}}, ["c1", "c2", "c3"]),
    ({"segments": {"$contains": "seg-b"}}, ["c3"]),
    ({"segments": {"$in": ["seg-b", "nope"]}}, ["c3"]),
    ({"segments": {"$nin": ["seg-b"]}}, ["c1", "c2", "c4", "c5"]),
    ({"segments": {"$exists": False}}, ["c4", "c5"]),
    ({"$or": [{"id": "c1"}, {"status": "scheduled"}]}, ["c1", "c5"]),
    ({"$and": [{"segments": "seg-a"}, {"id": {"$gt": "c1"}}]}, ["c2", "c3"])]


async def test_every_filter_operator(five):
    for filter, expected in FILTER_CASES:
        assert await ids(five, filter) == expected, filter


async def test_time_filters(five):
    everything = (await query(five, sort=[("created_at", 1)])).campaigns
    third = everything[2].created_at.ToDatetime().isoformat() + "Z"
    assert await ids(five, {"created_at": {"$gte": third}}) == ["c3", "c4", "c5"]
    assert await ids(five, {"created_at": {"$lt": third}}) == ["c1", "c2"]
    # c4 and c5 were changed (started) after everything was created.
    last_created = everything[-1].created_at.ToDatetime().isoformat() + "Z"
    assert await ids(five, {"updated_at": {"$gte": last_created}}) == ["c4", "c5"]


BAD_FILTERS = [
    ({"colour": "red"}, "filter.colour"),
    ({"id": {"$regex": "c"}}, "filter.id.$regex"),
    ({"id": {"$in": "c1"}}, "filter.id.$in"),
    ({"id": {"$gt": {"a": 1}}}, "filter.id.$gt"),
    ({"status": "running"}, "filter.status"),
    ({"created_at": {"$gte": "yesterday"}}, "filter.created_at.$gte"),
    ({"$or": []}, "filter.$or"),
]


async def test_bad_filters_name_the_field(env):
    for filter, field in BAD_FILTERS:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await query(env, filter)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(caught.value) == [field], filter
        assert error_reason(caught.value) == ("campaign.herald", "INVALID_FILTER"), filter


async def test_sort_both_directions(five):
    for field in ["id", "name", "created_at", "updated_at"]:
        assert await ids(five, sort=[(field, 1)]) == ["c1", "c2", "c3", "c4", "c5"], field
        assert await ids(five, sort=[(field, -1)]) == ["c5", "c4", "c3", "c2", "c1"], field


async def test_sort_on_status_then_id_and_default_newest_first(five):
    assert await ids(five, sort=[("status", 1), ("id", -1)]) == ["c3", "c2", "c1", "c4", "c5"]
    assert await ids(five, sort=[("sender_id", -1)]) == ["c5", "c1", "c2", "c3", "c4"]
    assert await ids(five, sort=()) == ["c5", "c4", "c3", "c2", "c1"]


@pytest.mark.parametrize("sort, field", [([("segments", 1)], "sort[0].field"), ([("id", 2)], "sort[0].direction")])
async def test_bad_sort(five, sort, field):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await query(five, sort=sort)
    assert violations(caught.value) == [field]


async def test_paging_forward_and_back_across_inserts(five):
    env = five
    sort = [("id", 1)]
    page1 = await query(env, sort=sort, limit=2)
    assert [c.id for c in page1.campaigns] == ["c1", "c2"] and page1.next and not page1.prev
    # Inserted between pages: one before the cursor (never shows going forward), one after it.
    await env.create(id="c0")
    await env.create(id="c25")
    page2 = await query(env, sort=sort, limit=2, next=page1.next)
    assert [c.id for c in page2.campaigns] == ["c25", "c3"]
    page3 = await query(env, sort=sort, limit=2, next=page2.next)
    assert [c.id for c in page3.campaigns] == ["c4", "c5"] and not page3.next and page3.prev
    await env.create(id="c35")
    back = await query(env, sort=sort, limit=2, prev=page3.prev)
    assert [c.id for c in back.campaigns] == ["c3", "c35"]
    back2 = await query(env, sort=sort, limit=2, prev=back.prev)
    assert [c.id for c in back2.campaigns] == ["c2", "c25"]
    back3 = await query(env, sort=sort, limit=2, prev=back2.prev)
    assert [c.id for c in back3.campaigns] == ["c0", "c1"] and not back3.prev and back3.next


async def test_paging_newest_first_with_inserts(five):
    env = five
    page1 = await query(env, limit=3)
    assert [c.id for c in page1.campaigns] == ["c5", "c4", "c3"]
    env.clock.advance(60)
    await env.create(id="newer")  # newest: before the cursor, so not on the next page
    page2 = await query(env, limit=3, next=page1.next)
    assert [c.id for c in page2.campaigns] == ["c2", "c1"] and not page2.next
    back = await query(env, limit=3, prev=page2.prev)
    assert [c.id for c in back.campaigns] == ["c5", "c4", "c3"] and back.prev
    assert [c.id for c in (await query(env, limit=3, prev=back.prev)).campaigns] == ["newer"]


async def test_cursor_is_bound_to_filter_and_sort(five):
    page = await query(five, {"status": "draft"}, limit=1)
    for kwargs in (dict(filter={"status": "scheduled"}), dict(filter={"status": "draft"}, sort=[("name", 1)])):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await query(five, limit=1, next=page.next, **kwargs)
        assert violations(caught.value) == ["next"]
        assert error_reason(caught.value) == ("campaign.herald", "CURSOR_INVALID")


@pytest.mark.parametrize("fields, field", [(dict(limit=101), "limit"), (dict(user_limit=1001), "user_limit")])
async def test_limits(five, fields, field):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await query(five, **fields)
    assert violations(caught.value) == [field]


async def test_limit_default_and_maximum(env):
    for i in range(30):
        await env.create(id=f"m{i:02d}")
    assert len((await query(env)).campaigns) == 25
    assert len((await query(env, limit=100)).campaigns) == 30


async def test_user_limit_embeds_users(five):
    env = five
    await env.create(id="big", user_ids=["u3", "u1", "u2"])
    got = {c.id: c for c in (await query(env, user_limit=2)).campaigns}
    assert [u.id for u in got["big"].users] == ["u1", "u2"] and got["big"].users[0].name == "name of u1"
    assert [u.id for u in got["c4"].users] == ["u1", "u2"]
    assert got["c1"].segments[0].id == "seg-a" and got["c5"].sender.id == "u1"
    assert all(not c.users for c in (await query(env)).campaigns)


async def test_pages_of_large_campaigns_stay_under_the_message_cap(env):
    user_ids = [f"{i:0200d}" for i in range(10_000)]  # about 2 MB of ids per campaign
    created = [(await env.create(id=f"big{i}", user_ids=user_ids)).id for i in range(7)]
    seen, cursor, pages = [], "", 0
    while True:
        reply = await env.client.QueryCampaigns(cs.QueryCampaignsRequest(next=cursor))  # limit 25
        assert reply.ByteSize() < 16 * 2**20
        seen += [c.id for c in reply.campaigns]
        pages += 1
        if not reply.next:
            break
        cursor = reply.next
    assert sorted(seen) == sorted(created) and pages > 1
    back = await env.client.QueryCampaigns(cs.QueryCampaignsRequest(prev=reply.prev))
    assert back.campaigns and back.ByteSize() < 16 * 2**20
