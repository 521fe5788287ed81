"""StreamRecipients, CountRecipients and SplitRecipients: dedupe, order, resume, ranges, sender,
skipped ids, limits."""

from __future__ import annotations

import grpc
from google.protobuf import struct_pb2

from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, segment_service_pb2 as ss

from .conftest import expect_error

USER, CHANNEL = 1, 2


def _filter(**values) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def _ids(batches) -> list[str]:
    return [r.target_id for b in batches for r in b.recipients]


async def _three_segments(svc, n: int = 60):
    """Users u00..u{n-1}; odd ones have country=NL. Segments: filter (NL), all_users, manual
    (every third id plus two unknown ids)."""
    users = [directory_pb2.User(id=f"u{i:02d}", name=f"User {i}", role="user", teams=["t1"]) for i in range(n)]
    for i, u in enumerate(users):
        u.custom.update({"country": "NL" if i % 2 else "DE", "n": i})
    await svc.directory.UpsertUsers(ds.UpsertUsersRequest(users=users))
    nl = await svc.segment(name="nl", filter=_filter(country="NL"))
    everyone = await svc.segment(name="all", all_users=True)
    manual = await svc.segment(name="manual")
    await svc.segments.AddSegmentTargets(ss.AddSegmentTargetsRequest(
        id=manual, target_ids=[f"u{i:02d}" for i in range(0, n, 3)] + ["zz-unknown", "a-unknown"]))
    return nl, everyone, manual


async def test_three_overlapping_segments_stream_each_user_once_in_order(svc):
    segment_ids = list(await _three_segments(svc))
    batches = await svc.stream(segment_ids=segment_ids, sender_id="u05", batch_size=7)
    ids = _ids(batches)
    expected = sorted({f"u{i:02d}" for i in range(60)} - {"u05"})
    assert ids == expected
    skipped = [s for b in batches for s in b.skipped_ids]
    assert sorted(skipped) == ["a-unknown", "zz-unknown"]
    assert all(len(b.recipients) + len(b.skipped_ids) == 7 for b in batches[:-1])
    first = batches[0].recipients[0].user
    assert (first.id, first.name, first.role, list(first.teams)) == ("u00", "User 0", "user", ["t1"])
    assert dict(first.custom) == {"country": "DE", "n": 0}
    count = await svc.segments.CountRecipients(ss.CountRecipientsRequest(segment_ids=segment_ids, sender_id="u05"))
    assert count.count == 59 + 2  # unknown ids are counted (and skipped when sending)


async def test_stream_resumed_from_any_cursor_yields_exactly_the_rest(svc):
    segment_ids = list(await _three_segments(svc, 25))
    batches = await svc.stream(segment_ids=segment_ids, batch_size=4)
    covered = [sorted([r.target_id for r in b.recipients] + list(b.skipped_ids)) for b in batches]
    for k, batch in enumerate(batches):
        rest = await svc.stream(segment_ids=segment_ids, batch_size=4, cursor=batch.cursor)
        assert [sorted([r.target_id for r in b.recipients] + list(b.skipped_ids)) for b in rest] == covered[k + 1:]
        assert batch.cursor == max(covered[k])


async def test_split_ranges_stream_the_whole_audience_once_in_near_equal_parts(svc):
    segment_ids = list(await _three_segments(svc, 50))  # 49 users (the sender left out) + 2 unknown ids
    everyone = _ids(await svc.stream(segment_ids=segment_ids, sender_id="u05")) + ["a-unknown", "zz-unknown"]
    for parts in (1, 3, 4, 51, 200):
        split = await svc.segments.SplitRecipients(ss.SplitRecipientsRequest(
            segment_ids=segment_ids, sender_id="u05", parts=parts))
        ends = [*split.boundaries, ""]
        assert len(ends) == min(parts, 51) and list(split.boundaries) == sorted(split.boundaries)
        sizes, streamed = [], []
        for after, last in zip(["", *split.boundaries], ends):
            batches = await svc.stream(segment_ids=segment_ids, sender_id="u05", cursor=after, last_target_id=last,
                                       batch_size=7)
            covered = _ids(batches) + [s for b in batches for s in b.skipped_ids]
            sizes.append(len(covered))
            streamed += covered
        assert sorted(streamed) == sorted(everyone)  # every target once, across the ranges
        assert max(sizes) - min(sizes) <= -(-51 // parts), sizes
    # A list of user ids is cut the same way.
    listed = [f"id{i:03d}" for i in range(10)]
    split = await svc.segments.SplitRecipients(ss.SplitRecipientsRequest(user_ids=listed, parts=3))
    assert list(split.boundaries) == ["id003", "id007"]
    batches = await svc.stream(user_ids=listed, cursor="id003", last_target_id="id007")
    assert [s for b in batches for s in b.skipped_ids] == ["id004", "id005", "id006", "id007"]


async def test_filter_and_manual_without_all_users(svc):
    nl, _, manual = await _three_segments(svc, 12)
    ids = _ids(await svc.stream(segment_ids=[nl, manual]))
    assert ids == sorted({f"u{i:02d}" for i in range(12) if i % 2 or i % 3 == 0})
    two_filters = await svc.segment(filter=_filter(n={"$lt": 2}))
    assert _ids(await svc.stream(segment_ids=[nl, two_filters])) == sorted(
        {f"u{i:02d}" for i in range(12) if i % 2} | {"u00"})


async def test_user_ids_audience_reports_unknown_users_as_skipped(svc):
    await svc.users("a", "b", "c")
    batches = await svc.stream(user_ids=["c", "x", "a", "c", "sender", "b"], sender_id="sender", batch_size=2)
    assert [([r.target_id for r in b.recipients], list(b.skipped_ids), b.cursor) for b in batches] == [
        (["a", "b"], [], "b"), (["c"], ["x"], "x")]
    count = await svc.segments.CountRecipients(ss.CountRecipientsRequest(user_ids=["a", "x", "a", "sender"],
                                                                         sender_id="sender"))
    assert count.count == 2
    resumed = await svc.stream(user_ids=["c", "x", "a", "b"], cursor="b")
    assert _ids(resumed) == ["c"] and list(resumed[0].skipped_ids) == ["x"]


async def test_empty_audience_streams_nothing(svc):
    manual = await svc.segment()
    assert await svc.stream(segment_ids=[manual]) == []


async def test_channel_segments_stream_channels_with_members(svc):
    await svc.users("s", "a", "b")
    channels = [directory_pb2.Channel(type="messaging", id=f"c{i}", team="red",
                                      members=[directory_pb2.ChannelMember(user_id="a", channel_role="channel_moderator"),
                                               directory_pb2.ChannelMember(user_id="s" if i % 2 else "b",
                                                                           hidden=True)])
                for i in range(5)]
    channels[0].custom.update({"topic": "news"})
    await svc.directory.UpsertChannels(ds.UpsertChannelsRequest(channels=channels))
    sender_channels = await svc.segment(type=CHANNEL, all_sender_channels=True)
    by_filter = await svc.segment(type=CHANNEL, filter=_filter(topic="news"))
    manual = await svc.segment(type=CHANNEL)
    await svc.segments.AddSegmentTargets(ss.AddSegmentTargetsRequest(id=manual, target_ids=["messaging:c1",
                                                                                             "messaging:zz"]))
    batches = await svc.stream(segment_ids=[sender_channels, by_filter, manual], sender_id="s", batch_size=2)
    assert _ids(batches) == ["messaging:c0", "messaging:c1", "messaging:c3"]
    assert [s for b in batches for s in b.skipped_ids] == ["messaging:zz"]
    c0 = batches[0].recipients[0].channel
    assert (c0.cid, c0.type, c0.id, c0.team, dict(c0.custom)) == ("messaging:c0", "messaging", "c0", "red",
                                                                  {"topic": "news"})
    assert [(m.user_id, m.channel_role, m.hidden) for m in c0.members] == [
        ("a", "channel_moderator", False), ("b", "channel_member", True)]
    count = await svc.segments.CountRecipients(ss.CountRecipientsRequest(
        segment_ids=[sender_channels, by_filter, manual], sender_id="s"))
    assert count.count == 4


async def test_bad_audience_requests(svc):
    user_seg = await svc.segment()
    channel_seg = await svc.segment(type=CHANNEL)
    sender_seg = await svc.segment(type=CHANNEL, all_sender_channels=True)
    stream = svc.segments.StreamRecipients
    cases = [
        (ss.StreamRecipientsRequest(), "segment_ids"),
        (ss.StreamRecipientsRequest(segment_ids=[user_seg], user_ids=["a"]), "user_ids"),
        (ss.StreamRecipientsRequest(segment_ids=[user_seg] * 26), "segment_ids"),
        (ss.StreamRecipientsRequest(user_ids=["a"] * 10_001), "user_ids"),
        (ss.StreamRecipientsRequest(user_ids=["a", ""]), "user_ids[1]"),
        (ss.StreamRecipientsRequest(user_ids=["a"], batch_size=10_001), "batch_size"),
        (ss.StreamRecipientsRequest(user_ids=["a"], batch_size=-1), "batch_size"),
        (ss.StreamRecipientsRequest(segment_ids=[user_seg, channel_seg]), "segment_ids"),
        (ss.StreamRecipientsRequest(segment_ids=[sender_seg]), "sender_id"),
    ]
    for request, field in cases:
        await expect_error(stream(request), grpc.StatusCode.INVALID_ARGUMENT, field)
    split = svc.segments.SplitRecipients
    for parts in (0, -1, 1001):
        await expect_error(split(ss.SplitRecipientsRequest(user_ids=["a"], parts=parts)),
                           grpc.StatusCode.INVALID_ARGUMENT, "parts")
    await expect_error(split(ss.SplitRecipientsRequest(parts=2)), grpc.StatusCode.INVALID_ARGUMENT, "segment_ids")
    await expect_error(stream(ss.StreamRecipientsRequest(user_ids=["a"], last_target_id="x" * 400)),
                       grpc.StatusCode.INVALID_ARGUMENT, "last_target_id")
    await expect_error(stream(ss.StreamRecipientsRequest(segment_ids=[user_seg, channel_seg])),
                       grpc.StatusCode.INVALID_ARGUMENT, "segment_ids", reason="SEGMENT_TYPE_MISMATCH")
    await expect_error(stream(ss.StreamRecipientsRequest(segment_ids=[user_seg, "nope"])), grpc.StatusCode.NOT_FOUND,
                       reason="SEGMENT_NOT_FOUND")
    await expect_error(svc.segments.CountRecipients(ss.CountRecipientsRequest(segment_ids=["nope"])),
                       grpc.StatusCode.NOT_FOUND, reason="SEGMENT_NOT_FOUND")
    await expect_error(svc.segments.CountRecipients(ss.CountRecipientsRequest()),
                       grpc.StatusCode.INVALID_ARGUMENT, "segment_ids")
    # The limits themselves are accepted.
    assert await svc.stream(segment_ids=[user_seg] * 25, batch_size=10_000) == []
    assert len(_ids(await svc.stream(user_ids=[f"u{i}" for i in range(10_000)]))) == 0


async def test_users_added_behind_the_cursor_are_not_streamed(svc):
    await svc.users(*[f"u{i}" for i in range(10)])
    everyone = await svc.segment(all_users=True)
    first = (await svc.stream(segment_ids=[everyone], batch_size=5))[0]
    await svc.users("u0a", "u9a")  # one behind the cursor, one ahead
    rest = _ids(await svc.stream(segment_ids=[everyone], batch_size=5, cursor=first.cursor))
    assert rest == ["u5", "u6", "u7", "u8", "u9", "u9a"]


async def test_every_batch_says_whether_its_targets_are_users_or_channels(svc):
    await svc.users("a", "b", "s")
    await svc.directory.UpsertChannels(ds.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="m", id=f"c{i}", members=[directory_pb2.ChannelMember(user_id="a")])
        for i in range(2)]))
    # Batch size 2: the last batch of each audience holds only unknown (skipped) ids.
    by_ids = await svc.stream(user_ids=["a", "b", "x1", "x2"], batch_size=2)
    users_manual = await svc.segment(type=USER)
    await svc.segments.AddSegmentTargets(ss.AddSegmentTargetsRequest(id=users_manual,
                                                                     target_ids=["a", "b", "x1", "x2"]))
    by_user_segments = await svc.stream(segment_ids=[users_manual, await svc.segment(all_users=True)],
                                        sender_id="s", batch_size=2)
    channels_manual = await svc.segment(type=CHANNEL)
    await svc.segments.AddSegmentTargets(ss.AddSegmentTargetsRequest(id=channels_manual,
                                                                     target_ids=["m:c0", "m:c1", "m:x1", "m:x2"]))
    by_channel_segments = await svc.stream(segment_ids=[channels_manual], batch_size=2)
    for batches, kind in ((by_ids, USER), (by_user_segments, USER), (by_channel_segments, CHANNEL)):
        assert [(len(b.recipients), len(b.skipped_ids)) for b in batches] == [(2, 0), (0, 2)]
        assert [b.target_type for b in batches] == [kind, kind]
