"""SegmentService: create/get/update/delete/query with DESIGN §4 rules, targets, sizes."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import struct_pb2

from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, segment_pb2, segment_service_pb2 as ss
from harness import client_channel, eventually, serving, test_settings
from herald.segment.v1 import directory_service_pb2_grpc, segment_service_pb2_grpc
from services.kit.db import make_engine
from services.segment_svc import sizes
from services.segment_svc.app import SegmentApp

from .conftest import SegmentClient, expect_error

USER, CHANNEL = segment_pb2.SEGMENT_TYPE_USER, segment_pb2.SEGMENT_TYPE_CHANNEL
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _struct(**values) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


async def _wait_size(svc, segment_id: str, size: int) -> None:
    async def observe() -> int:
        return (await svc.segments.GetSegment(ss.GetSegmentRequest(id=segment_id))).segment.size
    await eventually(observe, lambda got: got == size, what=f"size {size} of {segment_id}", interval_s=0.05)


async def test_create_get_update_delete(svc):
    created = (await svc.segments.CreateSegment(ss.CreateSegmentRequest(
        type=USER, name="n", description="d", filter=_struct(country="NL")))).segment
    assert len(created.id) == 36 and created.type == USER and created.filter == _struct(country="NL")
    assert created.created_at == created.updated_at and not created.HasField("deleted_at")
    got = (await svc.segments.GetSegment(ss.GetSegmentRequest(id=created.id))).segment
    assert got == created
    updated = (await svc.segments.UpdateSegment(ss.UpdateSegmentRequest(id=created.id, name="m"))).segment
    assert (updated.name, updated.description, updated.filter) == ("m", "d", created.filter)
    updated = (await svc.segments.UpdateSegment(ss.UpdateSegmentRequest(
        id=created.id, description="", filter=_struct(country="DE")))).segment
    assert (updated.name, updated.description, dict(updated.filter)) == ("m", "", {"country": "DE"})
    await svc.segments.DeleteSegment(ss.DeleteSegmentRequest(id=created.id))
    for call in (svc.segments.GetSegment(ss.GetSegmentRequest(id=created.id)),
                 svc.segments.DeleteSegment(ss.DeleteSegmentRequest(id=created.id)),
                 svc.segments.UpdateSegment(ss.UpdateSegmentRequest(id=created.id, name="x"))):
        await expect_error(call, grpc.StatusCode.NOT_FOUND, reason="SEGMENT_NOT_FOUND")
    again = await svc.segment(id=created.id)  # a deleted id can be used again
    await expect_error(svc.segments.CreateSegment(ss.CreateSegmentRequest(id=again, type=USER)),
                       grpc.StatusCode.ALREADY_EXISTS, reason="SEGMENT_ALREADY_EXISTS")


async def test_create_rules(svc):
    create = svc.segments.CreateSegment
    cases = [
        (ss.CreateSegmentRequest(), "type"),
        (ss.CreateSegmentRequest(type=USER, id="x" * 256), "id"),
        (ss.CreateSegmentRequest(type=USER, name="x" * 129), "name"),
        (ss.CreateSegmentRequest(type=USER, description="x" * 257), "description"),
        (ss.CreateSegmentRequest(type=USER, filter=_struct(a=1), all_users=True), "all_users"),
        (ss.CreateSegmentRequest(type=CHANNEL, filter=_struct(a=1), all_sender_channels=True), "all_sender_channels"),
        (ss.CreateSegmentRequest(type=CHANNEL, all_users=True), "all_users"),
        (ss.CreateSegmentRequest(type=USER, all_sender_channels=True), "all_sender_channels"),
        (ss.CreateSegmentRequest(type=USER, filter=struct_pb2.Struct()), "filter"),
        (ss.CreateSegmentRequest(type=USER, filter=_struct(age={"$gt": {"x": 1}})), "filter.age.$gt"),
        (ss.CreateSegmentRequest(type=USER, filter=_struct(name={"$regex": "x"})), "filter.name.$regex"),
        (ss.CreateSegmentRequest(type=CHANNEL, filter=_struct(members={"$in": "a"})), "filter.members.$in"),
    ]
    for request, field in cases:
        await expect_error(create(request), INVALID, field,
                           reason="INVALID_FILTER" if field.startswith("filter") else "INVALID_ARGUMENT")
    # At the limits.
    ok = await create(ss.CreateSegmentRequest(type=USER, id="x" * 255, name="n" * 128, description="d" * 256))
    assert ok.segment.id == "x" * 255


async def test_update_rules(svc):
    manual = await svc.segment()
    filtered = await svc.segment(filter=_struct(a=1))
    update = svc.segments.UpdateSegment
    await expect_error(update(ss.UpdateSegmentRequest(name="x")), INVALID, "id")
    await expect_error(update(ss.UpdateSegmentRequest(id=manual, name="x" * 129)), INVALID, "name")
    await expect_error(update(ss.UpdateSegmentRequest(id=manual, description="x" * 257)), INVALID, "description")
    await expect_error(update(ss.UpdateSegmentRequest(id=filtered, filter=_struct(a={"$in": 1}))), INVALID,
                       "filter.a.$in", reason="INVALID_FILTER")
    await expect_error(update(ss.UpdateSegmentRequest(id=filtered, filter=struct_pb2.Struct())), INVALID, "filter",
                       reason="INVALID_FILTER")
    await expect_error(update(ss.UpdateSegmentRequest(id=manual, filter=_struct(a=1))),
                       grpc.StatusCode.FAILED_PRECONDITION, reason="SEGMENT_WITHOUT_FILTER")


async def test_manual_targets_size_in_place(svc):
    seg = await svc.segment()
    add = await svc.segments.AddSegmentTargets(ss.AddSegmentTargetsRequest(id=seg, target_ids=["b", "a", "b"]))
    assert add.segment.size == 2
    add = await svc.segments.AddSegmentTargets(ss.AddSegmentTargetsRequest(
        id=seg, target_ids=[f"t{i:05d}" for i in range(10_000)]))
    assert add.segment.size == 10_002
    removed = await svc.segments.DeleteSegmentTargets(ss.DeleteSegmentTargetsRequest(
        id=seg, target_ids=["a", "absent"] + [f"t{i:05d}" for i in range(9_998)]))
    assert removed.segment.size == 3
    exists = svc.segments.SegmentTargetExists
    assert (await exists(ss.SegmentTargetExistsRequest(id=seg, target_id="b"))).exists
    assert not (await exists(ss.SegmentTargetExistsRequest(id=seg, target_id="a"))).exists
    await expect_error(exists(ss.SegmentTargetExistsRequest(id="nope", target_id="a")), grpc.StatusCode.NOT_FOUND,
                       reason="SEGMENT_NOT_FOUND")
    await expect_error(exists(ss.SegmentTargetExistsRequest(id=seg)), INVALID, "target_id")


async def test_target_limits_and_kinds(svc):
    seg = await svc.segment()
    channel_seg = await svc.segment(type=CHANNEL)
    everyone = await svc.segment(all_users=True)
    for rpc, kind in ((svc.segments.AddSegmentTargets, ss.AddSegmentTargetsRequest),
                      (svc.segments.DeleteSegmentTargets, ss.DeleteSegmentTargetsRequest)):
        await expect_error(rpc(kind(id=seg)), INVALID, "target_ids")
        await expect_error(rpc(kind(id=seg, target_ids=["a"] * 10_001)), INVALID, "target_ids")
        await expect_error(rpc(kind(id=seg, target_ids=["a", ""])), INVALID, "target_ids[1]")
        await expect_error(rpc(kind(target_ids=["a"])), INVALID, "id")
        await expect_error(rpc(kind(id="nope", target_ids=["a"])), grpc.StatusCode.NOT_FOUND,
                           reason="SEGMENT_NOT_FOUND")
        await expect_error(rpc(kind(id=everyone, target_ids=["a"])), grpc.StatusCode.FAILED_PRECONDITION,
                           reason="SEGMENT_NOT_MANUAL")
    await expect_error(svc.segments.AddSegmentTargets(ss.AddSegmentTargetsRequest(
        id=channel_seg, target_ids=["messaging:a", "not-a-cid"])), INVALID, "target_ids[1]")
    await expect_error(svc.segments.AddSegmentTargets(ss.AddSegmentTargetsRequest(
        id=seg, target_ids=["x" * 256])), INVALID, "target_ids[0]")


async def test_query_segment_targets(svc):
    seg = await svc.segment()
    await svc.segments.AddSegmentTargets(ss.AddSegmentTargetsRequest(id=seg, target_ids=[f"t{i:02d}" for i in range(25)]))

    async def query(filter=None, **kw):
        request = ss.QuerySegmentTargetsRequest(id=seg, **kw)
        if filter is not None:
            request.filter.update(filter)
        return await svc.segments.QuerySegmentTargets(request)

    page = await query()
    assert [t.target_id for t in page.targets] == [f"t{i:02d}" for i in range(25)] and not page.next
    assert all(t.segment_id == seg and t.created_at.seconds > 0 for t in page.targets)
    page1 = await query(limit=10)
    page2 = await query(limit=10, next=page1.next)
    assert page2.targets[0].target_id == "t10" and page2.prev
    assert [t.target_id for t in (await query(limit=10, prev=page2.prev)).targets] == [t.target_id for t in page1.targets]
    assert [t.target_id for t in (await query({"target_id": {"$gte": "t20", "$lt": "t23"}})).targets] == [
        "t20", "t21", "t22"]
    assert [t.target_id for t in (await query({"target_id": {"$in": ["t01", "zz"]}})).targets] == ["t01"]
    assert [t.target_id for t in (await query({"target_id": "t05"})).targets] == ["t05"]
    desc = await query(sort=[common_pb2.SortParam(field="target_id", direction=-1)], limit=2)
    assert [t.target_id for t in desc.targets] == ["t24", "t23"]
    await expect_error(query(limit=10_001), INVALID, "limit")
    await expect_error(query({"created_at": {"$gt": "2020-01-01T00:00:00Z"}}), INVALID, "filter.created_at",
                       reason="INVALID_FILTER")
    await expect_error(query({"target_id": {"$ne": "a"}}), INVALID, "filter.target_id.$ne", reason="INVALID_FILTER")
    await expect_error(query(sort=[common_pb2.SortParam(field="created_at")]), INVALID, "sort[0].field")
    await expect_error(svc.segments.QuerySegmentTargets(ss.QuerySegmentTargetsRequest(id="nope")),
                       grpc.StatusCode.NOT_FOUND, reason="SEGMENT_NOT_FOUND")
    assert len((await query(limit=10_000)).targets) == 25


async def test_query_segments(svc):
    ids = [await svc.segment(id=f"s{i}", name=f"name{i}", type=USER if i % 2 else CHANNEL,
                             all_users=bool(i % 2)) for i in range(6)]

    async def query(filter=None, **kw):
        request = ss.QuerySegmentsRequest(**kw)
        if filter is not None:
            request.filter.update(filter)
        return await svc.segments.QuerySegments(request)

    assert [s.id for s in (await query()).segments] == ids[::-1]  # newest first
    assert [s.id for s in (await query({"type": "user"})).segments] == ["s5", "s3", "s1"]
    assert [s.id for s in (await query({"type": "SEGMENT_TYPE_CHANNEL"})).segments] == ["s4", "s2", "s0"]
    assert [s.id for s in (await query({"all_users": False, "name": {"$in": ["name0", "name1"]}})).segments] == ["s0"]
    page1 = await query(sort=[common_pb2.SortParam(field="id", direction=1)], limit=4)
    page2 = await query(sort=[common_pb2.SortParam(field="id", direction=1)], limit=4, next=page1.next)
    assert [s.id for s in [*page1.segments, *page2.segments]] == ids and not page2.next
    await expect_error(query({"country": "x"}), INVALID, "filter.country", reason="INVALID_FILTER")
    await expect_error(query({"type": "group"}), INVALID, "filter.type", reason="INVALID_FILTER")
    await expect_error(query(limit=101), INVALID, "limit")
    assert len((await query(limit=100)).segments) == 6


async def test_sizes_are_computed_in_the_background_and_kept_current(svc):
    users = [directory_pb2.User(id=f"u{i:03d}", custom=_struct(country="NL" if i % 2 else "DE")) for i in range(200)]
    await svc.directory.UpsertUsers(ds.UpsertUsersRequest(users=users))
    nl = await svc.segment(filter=_struct(country="NL"))
    everyone = await svc.segment(all_users=True)
    await _wait_size(svc, nl, 100)
    await _wait_size(svc, everyone, 200)
    await svc.users(directory_pb2.User(id="new", custom=_struct(country="NL")))
    await _wait_size(svc, nl, 101)
    await _wait_size(svc, everyone, 201)
    await svc.directory.DeleteUsers(ds.DeleteUsersRequest(ids=["u001", "u002"]))
    await _wait_size(svc, nl, 100)
    await _wait_size(svc, everyone, 199)

    async def chunks():
        yield ds.ImportUsersRequest(users=[directory_pb2.User(id=f"i{i}", custom=_struct(country="NL"))
                                           for i in range(50)])

    await svc.directory.ImportUsers(chunks())
    await _wait_size(svc, nl, 150)
    await svc.segments.UpdateSegment(ss.UpdateSegmentRequest(id=nl, filter=_struct(country="DE")))
    await _wait_size(svc, nl, 99)
    # Channel filter segments follow channel writes; all_sender_channels never has a size.
    by_team = await svc.segment(type=CHANNEL, filter=_struct(team="red"))
    sender = await svc.segment(type=CHANNEL, all_sender_channels=True)
    await svc.directory.UpsertChannels(ds.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="m", id=f"c{i}", team="red", members=[directory_pb2.ChannelMember(user_id="u000")])
        for i in range(3)]))
    await _wait_size(svc, by_team, 3)
    assert (await svc.segments.GetSegment(ss.GetSegmentRequest(id=sender))).segment.size == 0


async def test_target_exists_for_computed_segments(svc):
    await svc.users(directory_pb2.User(id="a", custom=_struct(country="NL")), "b")
    nl = await svc.segment(filter=_struct(country="NL"))
    everyone = await svc.segment(all_users=True)
    exists = svc.segments.SegmentTargetExists
    assert (await exists(ss.SegmentTargetExistsRequest(id=nl, target_id="a"))).exists
    assert not (await exists(ss.SegmentTargetExistsRequest(id=nl, target_id="b"))).exists
    assert (await exists(ss.SegmentTargetExistsRequest(id=everyone, target_id="b"))).exists
    assert not (await exists(ss.SegmentTargetExistsRequest(id=everyone, target_id="zz"))).exists


@pytest.mark.parametrize("rpc,kind", [("GetSegment", ss.GetSegmentRequest), ("DeleteSegment", ss.DeleteSegmentRequest),
                                      ("QuerySegmentTargets", ss.QuerySegmentTargetsRequest)])
async def test_segment_id_is_required(svc, rpc, kind):
    await expect_error(getattr(svc.segments, rpc)(kind()), INVALID, "id")
    await expect_error(getattr(svc.segments, rpc)(kind(id="x" * 256)), INVALID, "id")


async def test_member_filter_sizes_follow_every_membership_change(svc):
    await svc.users("a", "b", "s")
    await svc.directory.UpsertChannels(ds.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="t", id="x", members=[directory_pb2.ChannelMember(user_id="a")]),
        directory_pb2.Channel(type="t", id="y", members=[directory_pb2.ChannelMember(user_id="b")])]))
    with_a = await svc.segment(type=CHANNEL, filter=_struct(members={"$in": ["a"]}))
    with_s = await svc.segment(type=CHANNEL, filter=_struct(members={"$in": ["s"]}))
    await _wait_size(svc, with_a, 1)
    await svc.directory.DeleteUsers(ds.DeleteUsersRequest(ids=["a"]))
    await _wait_size(svc, with_a, 0)
    # EnsureChannels adding the sender to existing channels (INCLUDE) changes memberships too.
    await svc.directory.EnsureChannels(ds.EnsureChannelsRequest(
        campaign_id="c", sender_id="s", sender_mode=common_pb2.SENDER_MODE_INCLUDE,
        channels=[ds.ChannelSpec(recipient_id="t:x", cid="t:x"), ds.ChannelSpec(recipient_id="t:y", cid="t:y")]))
    await _wait_size(svc, with_s, 2)
    # A membership removed by UpsertChannels (its member list is replaced).
    await svc.directory.UpsertChannels(ds.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="t", id="y", members=[directory_pb2.ChannelMember(user_id="b")])]))
    await _wait_size(svc, with_s, 1)


async def test_a_failed_recount_is_retried(svc, monkeypatch):
    real = sizes._count
    calls = {"failed": 0}

    async def fails_once(session, segment):
        if segment.id == everyone and not calls["failed"]:
            calls["failed"] += 1
            raise RuntimeError("database is locked")  # a transient failure of one recount
        return await real(session, segment)

    everyone = await svc.segment(all_users=True)
    await _wait_size(svc, everyone, 0)
    monkeypatch.setattr(sizes, "_count", fails_once)
    await svc.users(*[f"u{i}" for i in range(10)])
    await _wait_size(svc, everyone, 10)
    assert calls["failed"] == 1


async def test_every_computed_size_is_recounted_at_start(new_db_url, tmp_path):
    """A crash between a recount's claim and its write leaves a stale size with no dirty flag;
    the next start recounts it anyway."""
    url = await new_db_url("segment")
    settings = replace(test_settings(tmp_path), segment_db_url=url)

    async def run(check):
        app = SegmentApp(settings, make_engine(url), size_debounce_s=0.05, size_rest_s=0.05)
        async with serving(app, settings) as running, client_channel(running.port) as channel:
            await check(SegmentClient(directory_service_pb2_grpc.DirectoryServiceStub(channel),
                                      segment_service_pb2_grpc.SegmentServiceStub(channel), app))

    async def first(svc):
        await svc.users("a", "b", "c")
        run.segment_id = await svc.segment(all_users=True)
        await _wait_size(svc, run.segment_id, 3)

    await run(first)
    engine = make_engine(url)
    async with engine.begin() as conn:  # as if a recount had claimed it and then crashed
        await conn.execute(sa.text("UPDATE segments SET size = 99, size_dirty = :no"), {"no": False})
    await engine.dispose()

    async def second(svc):
        await _wait_size(svc, run.segment_id, 3)

    await run(second)
