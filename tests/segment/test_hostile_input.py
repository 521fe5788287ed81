"""Hostile values through the real segment service (DESIGN §10.3): non-finite numbers and
out-of-range timestamps anywhere in a request, filters past their budgets, cursors that were not
made here. Each is INVALID_ARGUMENT naming the request's own field path, never INTERNAL, and
nothing of a refused request is stored."""

from __future__ import annotations

import math

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from harness import violations

from .conftest import expect_error
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, segment_service_pb2 as ss


def struct(data: dict) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    value.update(data)
    return value


def nested(depth: int) -> dict:
    leaf: dict = {"score": 1}
    for _ in range(depth):
        leaf = {"$or": [leaf]}
    return leaf


async def _refused(call, field: str, reason: str) -> None:
    exc = await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT, field, reason=reason)
    assert violations(exc) == [field], exc.details()


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
async def test_a_non_finite_custom_number_is_refused_and_not_stored(svc, number):
    await svc.users(directory_pb2.User(id="u0", custom=struct({"score": 3})))
    users = [directory_pb2.User(id=f"u{i}") for i in range(1, 4)]
    users[2].custom.update({"nested": {"score": [1, number]}})
    await _refused(svc.directory.UpsertUsers(ds.UpsertUsersRequest(users=users)),
                   "users[2].custom.nested.score[1]", "INVALID_ARGUMENT")

    channel = directory_pb2.Channel(type="t", id="c", custom=struct({"w": number}))
    await _refused(svc.directory.UpsertChannels(ds.UpsertChannelsRequest(channels=[channel])),
                   "channels[0].custom.w", "INVALID_ARGUMENT")
    found = await svc.directory.QueryUsers(ds.QueryUsersRequest(filter=struct({"score": {"$gte": 0}})))
    assert [u.id for u in found.users] == ["u0"]
    assert (await svc.directory.GetUsers(ds.GetUsersRequest(ids=["u1", "u3"]))).users == []


async def test_a_non_finite_number_in_a_filter_is_refused(svc):
    await _refused(svc.directory.QueryUsers(ds.QueryUsersRequest(filter=struct({"score": {"$gt": math.inf}}))),
                   "filter.score.$gt", "INVALID_ARGUMENT")
    await _refused(svc.segments.CreateSegment(ss.CreateSegmentRequest(type=1, filter=struct({"x": math.nan}))),
                   "filter.x", "INVALID_ARGUMENT")


async def test_an_out_of_range_timestamp_is_refused(svc):
    user = directory_pb2.User(id="u1", created_at=timestamp_pb2.Timestamp(seconds=-2 ** 63))
    await _refused(svc.directory.UpsertUsers(ds.UpsertUsersRequest(users=[user])), "users[0].created_at",
                   "INVALID_ARGUMENT")
    await _refused(svc.directory.QueryUsers(ds.QueryUsersRequest(filter=struct(
        {"created_at": {"$lt": "0001-01-01T00:30:00+01:00"}}))), "filter.created_at.$lt", "INVALID_FILTER")


@pytest.mark.parametrize("filter_,field", [
    (nested(11), "filter" + ".$or[0]" * 10 + ".$or"),
    ({"$and": [{"score": i} for i in range(101)]}, "filter.$and"),
    ({"name": {"$in": [f"n{i}" for i in range(10_001)]}}, "filter.name.$in"),
    ({"name": {"$in": ["x" * 1000] * 4300}}, "filter"),  # over 4 MiB serialized
    ({"$or": [{f"k{i}": i for i in range(99)}, {"$and": [{f"j{i}": i for i in range(99)}]},
              {"$and": [{f"m{i}": i for i in range(99)}]}]}, "filter"),  # SQL parameters
], ids=["depth-11", "clauses-101", "in-10001", "bytes", "parameters"])
async def test_filters_past_a_budget_are_refused_everywhere_they_enter(svc, filter_, field):
    await _refused(svc.directory.QueryUsers(ds.QueryUsersRequest(filter=struct(filter_))), field, "INVALID_FILTER")
    await _refused(svc.segments.CreateSegment(ss.CreateSegmentRequest(type=1, filter=struct(filter_))), field,
                   "INVALID_FILTER")
    segment = await svc.segment(filter=struct({"score": 1}))
    await _refused(svc.segments.UpdateSegment(ss.UpdateSegmentRequest(id=segment, filter=struct(filter_))), field,
                   "INVALID_FILTER")


async def test_a_segment_at_every_filter_budget_streams_its_recipients(svc):
    await svc.users(*(directory_pb2.User(id=f"u{i}", teams=[f"t{i}"], custom=struct({"score": i}))
                      for i in range(5)))
    filter_ = {"$and": [nested(9),
                        {"teams": {"$in": [f"t{i}" for i in range(10_000)]}},
                        {"id": {"$nin": [f"x{i}" for i in range(9_999)] + ["u0"]}}]}
    segment = await svc.segment(filter=struct(filter_))
    batches = await svc.stream(segment_ids=[segment] * 25, sender_id="")
    assert [r.target_id for batch in batches for r in batch.recipients] == ["u1"]


async def test_cursors_not_made_here_are_refused(svc):
    await svc.users("a", "b", "c")
    first = await svc.directory.QueryUsers(ds.QueryUsersRequest(limit=1))
    payload, _, mac = first.next.partition(".")
    other = await svc.directory.QueryUsers(ds.QueryUsersRequest(limit=1, filter=struct({"id": {"$gte": "a"}})))
    assert [u.id for u in (await svc.directory.QueryUsers(ds.QueryUsersRequest(limit=1, next=first.next))).users] \
        == ["b"]
    for cursor, request in [
        ("garbage", ds.QueryUsersRequest(next="garbage")),
        ("truncated", ds.QueryUsersRequest(next=first.next[:-3])),
        ("unsigned", ds.QueryUsersRequest(next=payload)),
        ("altered", ds.QueryUsersRequest(next=payload[:-2] + "AA." + mac)),
        ("another query's", ds.QueryUsersRequest(next=other.next)),
        ("as prev", ds.QueryUsersRequest(prev=first.next)),
    ]:
        field = "prev" if request.prev else "next"
        exc = await expect_error(svc.directory.QueryUsers(request), grpc.StatusCode.INVALID_ARGUMENT, field,
                                 reason="CURSOR_INVALID")
        assert violations(exc) == [field], cursor
