"""EnsureChannels: find-or-create per recipient, sender_mode / sender_visibility /
show_channels (DESIGN §5), derived ids, idempotency per (campaign, recipient), limits."""

from __future__ import annotations

import grpc
from google.protobuf import struct_pb2

from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds

from .conftest import expect_error

EXCLUDE, INCLUDE = common_pb2.SENDER_MODE_EXCLUDE, common_pb2.SENDER_MODE_INCLUDE
HIDDEN, ARCHIVED = common_pb2.SENDER_VISIBILITY_HIDDEN, common_pb2.SENDER_VISIBILITY_ARCHIVED


def spec(receiver: str, *, id: str = "", type: str = "messaging", **fields) -> ds.ChannelSpec:
    return ds.ChannelSpec(recipient_id=receiver, receiver_id=receiver, type=type, id=id, **fields)


async def ensure(svc, *specs, campaign="camp", sender="s", **options) -> list[ds.EnsuredChannel]:
    request = ds.EnsureChannelsRequest(campaign_id=campaign, sender_id=sender, channels=specs, **options)
    return list((await svc.directory.EnsureChannels(request)).channels)


def members(outcome) -> dict[str, tuple]:
    return {m.user_id: (m.channel_role, m.hidden, m.HasField("archived_at")) for m in outcome.channel.members}


async def test_creates_channels_with_members_team_and_custom_only_when_asked(svc):
    await svc.users("s", "a", "b", "mod")
    custom = struct_pb2.Struct()
    custom.update({"campaign": "spring"})
    member = common_pb2.ChannelMemberTemplate(user_id="mod", channel_role="channel_moderator")
    not_created = await ensure(svc, spec("a", id="a-s"))
    assert (not_created[0].cid, not_created[0].created, not_created[0].skip_reason) == ("", False, "channel_not_found")
    out = await ensure(svc, spec("b", id="b-s", team="red", custom=custom, members=[member]),
                       campaign="c2", create_channels=True)
    assert (out[0].cid, out[0].created, out[0].skip_reason) == ("messaging:b-s", True, "")
    assert list(out[0].member_ids) == ["b", "mod", "s"]
    channel = out[0].channel
    assert (channel.type, channel.id, channel.team, channel.created_by_id, dict(channel.custom)) == (
        "messaging", "b-s", "red", "s", {"campaign": "spring"})
    assert members(out[0]) == {"b": ("channel_member", False, False), "mod": ("channel_moderator", False, False),
                               "s": ("channel_member", False, False)}
    # An existing channel keeps its team and custom; it is found, not created.
    other = struct_pb2.Struct()
    other.update({"campaign": "autumn"})
    again = await ensure(svc, spec("b", id="b-s", team="blue", custom=other), campaign="c3", create_channels=True)
    assert (again[0].cid, again[0].created) == ("messaging:b-s", False)
    assert (again[0].channel.team, dict(again[0].channel.custom)) == ("red", {"campaign": "spring"})


async def test_same_campaign_and_recipient_reports_the_stored_outcome(svc):
    await svc.users("s", "a", "b")
    first = await ensure(svc, spec("a", id="x"), spec("b"), create_channels=True)
    assert [o.created for o in first] == [True, True]
    second = await ensure(svc, spec("a", id="x"), spec("b"), create_channels=True)
    assert [(o.cid, o.created, list(o.member_ids)) for o in second] == [
        (o.cid, True, list(o.member_ids)) for o in first]
    # Another campaign finds the same channels and did not create them.
    other = await ensure(svc, spec("a", id="x"), spec("b"), campaign="other", create_channels=True)
    assert [(o.cid, o.created) for o in other] == [(o.cid, False) for o in first]
    # A skip is stored too: the channel appearing later does not change this campaign's outcome.
    skipped = await ensure(svc, spec("a", id="later"), campaign="c9")
    await ensure(svc, spec("a", id="later"), campaign="c10", create_channels=True)
    assert (await ensure(svc, spec("a", id="later"), campaign="c9"))[0].skip_reason == skipped[0].skip_reason


async def test_derived_ids_come_from_sorted_members(svc):
    await svc.users("s", "a", "b", "m")
    mod = [common_pb2.ChannelMemberTemplate(user_id="m")]
    out = await ensure(svc, spec("a"), spec("b", members=mod), create_channels=True)
    assert out[0].cid.startswith("messaging:!members-") and out[0].cid != out[1].cid
    # Same members in another order (sender given explicitly) → same channel.
    again = await ensure(svc, ds.ChannelSpec(recipient_id="m", receiver_id="m", type="messaging",
                                             members=[common_pb2.ChannelMemberTemplate(user_id="s"),
                                                      common_pb2.ChannelMemberTemplate(user_id="b")]),
                         campaign="c2", create_channels=True)
    assert (again[0].cid, again[0].created) == (out[1].cid, False)
    # Without the sender (EXCLUDE) the member set differs, so the channel does too.
    excluded = await ensure(svc, spec("a"), campaign="c3", create_channels=True, sender_mode=EXCLUDE)
    assert excluded[0].cid != out[0].cid and list(excluded[0].member_ids) == ["a"]


async def test_sender_mode_and_visibility(svc):
    await svc.users("s", "a", "b", "c", "d")
    await svc.directory.UpsertChannels(ds.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="messaging", id=f"old-{u}", members=[directory_pb2.ChannelMember(user_id=u)])
        for u in "ab"]))
    # Unset mode: sender joins new channels only.
    out = await ensure(svc, spec("a", id="old-a"), spec("c", id="new-c"), create_channels=True)
    assert list(out[0].member_ids) == ["a"] and list(out[1].member_ids) == ["c", "s"]
    # INCLUDE: new and existing channels.
    out = await ensure(svc, spec("b", id="old-b"), spec("d", id="new-d"), campaign="c2", create_channels=True,
                       sender_mode=INCLUDE, sender_visibility=HIDDEN)
    assert list(out[0].member_ids) == ["b", "s"] and not out[0].created
    assert members(out[0])["s"] == ("channel_member", False, False)  # visibility is for new channels
    assert members(out[1])["s"] == ("channel_member", True, False)
    # EXCLUDE: none.
    out = await ensure(svc, spec("c", id="x-c"), campaign="c3", create_channels=True, sender_mode=EXCLUDE)
    assert list(out[0].member_ids) == ["c"] and out[0].channel.created_by_id == "s"
    # ARCHIVED: archived for the sender.
    out = await ensure(svc, spec("d", id="y-d"), campaign="c4", create_channels=True, sender_visibility=ARCHIVED)
    assert members(out[0])["s"] == ("channel_member", False, True)
    assert members(out[0])["d"] == ("channel_member", False, False)


async def test_show_channels_unhides_for_the_receiver(svc):
    await svc.users("s", "a", "b", "c")
    hidden = [directory_pb2.ChannelMember(user_id=u, hidden=True) for u in ("a", "b", "s")]
    await svc.directory.UpsertChannels(ds.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="messaging", id="g", members=hidden),
        directory_pb2.Channel(type="team", id="t", members=hidden)]))
    out = await ensure(svc, spec("a", id="g"))
    assert members(out[0])["a"][1] is True  # without show_channels nothing changes
    out = await ensure(svc, spec("a", id="g"), campaign="c2", show_channels=True)
    assert {u: m[1] for u, m in members(out[0]).items()} == {"a": False, "b": True, "s": True}
    # Channel targets: every member but the sender.
    out = await ensure(svc, ds.ChannelSpec(recipient_id="team:t", cid="team:t"), campaign="c3", show_channels=True)
    assert {u: m[1] for u, m in members(out[0]).items()} == {"a": False, "b": False, "s": True}


async def test_channel_targets_must_exist_and_may_gain_the_sender(svc):
    await svc.users("s", "a")
    await svc.directory.UpsertChannels(ds.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="team", id="t", members=[directory_pb2.ChannelMember(user_id="a")])]))
    out = await ensure(svc, ds.ChannelSpec(recipient_id="team:t", cid="team:t"),
                       ds.ChannelSpec(recipient_id="team:none", cid="team:none"),
                       create_channels=True, sender_mode=INCLUDE)
    assert [(o.cid, o.created, o.skip_reason, list(o.member_ids)) for o in out] == [
        ("team:t", False, "", ["a", "s"]), ("", False, "channel_not_found", [])]


async def test_one_channel_for_several_recipients_is_created_once(svc):
    await svc.users("s", "a", "b")
    out = await ensure(svc, spec("a", id="lobby"), spec("b", id="lobby"), create_channels=True)
    assert [(o.cid, o.created) for o in out] == [("messaging:lobby", True), ("messaging:lobby", False)]


async def test_dry_run_answers_what_the_call_would_do_and_writes_nothing(svc):
    await svc.users("s", "a", "b", "c")
    await svc.directory.UpsertChannels(ds.UpsertChannelsRequest(channels=[directory_pb2.Channel(
        type="messaging", id="old-a", members=[directory_pb2.ChannelMember(user_id="a", hidden=True)])]))
    specs = [spec("a", id="old-a"), spec("b", id="new-b"), spec("c", id="nowhere")]
    options = {"create_channels": True, "sender_mode": INCLUDE, "show_channels": True}
    dry = await ensure(svc, *specs[:2], dry_run=True, **options)
    assert [(o.cid, o.created, o.existed, list(o.member_ids)) for o in dry] == [
        ("messaging:old-a", False, True, ["a", "s"]), ("messaging:new-b", True, False, ["b", "s"])]
    assert members(dry[0])["a"] == ("channel_member", False, False)  # would be unhidden
    assert (dry[1].channel.created_by_id, dry[1].channel.cid) == ("s", "messaging:new-b")
    skipped = await ensure(svc, specs[2], dry_run=True)
    assert (skipped[0].cid, skipped[0].existed, skipped[0].skip_reason) == ("", False, "channel_not_found")

    # Nothing was written: no channel, no member, no stored outcome for the campaign.
    listed = await svc.directory.QueryChannels(ds.QueryChannelsRequest())
    assert [(c.cid, [(m.user_id, m.hidden) for m in c.members]) for c in listed.channels] == [
        ("messaging:old-a", [("a", True)])]
    # The real call afterwards does what the dry run said, and is not answered from it.
    real = await ensure(svc, *specs, **options)
    assert [(o.cid, o.created, o.existed, list(o.member_ids)) for o in real] == [
        (o.cid, o.created, o.existed, list(o.member_ids)) for o in dry] + [("messaging:nowhere", True, False, ["c", "s"])]
    # Asked again, the stored outcomes: created stays true, and the channels exist now.
    again = await ensure(svc, *specs[:2], dry_run=True, **options)
    assert [(o.created, o.existed) for o in again] == [(False, True), (True, True)]


async def test_bad_ensure_requests(svc):
    ok = spec("a", id="x")
    bad = [
        (ds.EnsureChannelsRequest(sender_id="s", channels=[ok]), "campaign_id"),
        (ds.EnsureChannelsRequest(campaign_id="c", channels=[ok]), "sender_id"),
        (ds.EnsureChannelsRequest(campaign_id="c", sender_id="s"), "channels"),
        (ds.EnsureChannelsRequest(campaign_id="c", sender_id="s",
                                  channels=[spec(f"u{i}") for i in range(10_001)]), "channels"),
        (ds.EnsureChannelsRequest(campaign_id="c", sender_id="s", channels=[ok, ok]), "channels[1].recipient_id"),
        (ds.EnsureChannelsRequest(campaign_id="c", sender_id="s", channels=[spec("a", type="")]),
         "channels[0].type"),
        (ds.EnsureChannelsRequest(campaign_id="c", sender_id="s", channels=[spec("a", type="x" * 65)]),
         "channels[0].type"),
        (ds.EnsureChannelsRequest(campaign_id="c", sender_id="s", channels=[spec("a", id="x" * 256)]),
         "channels[0].id"),
        (ds.EnsureChannelsRequest(campaign_id="c", sender_id="s", channels=[
            spec("a", members=[common_pb2.ChannelMemberTemplate(user_id=f"m{i}") for i in range(1001)])]),
         "channels[0].members"),
        (ds.EnsureChannelsRequest(campaign_id="c", sender_id="s", channels=[
            ds.ChannelSpec(recipient_id="r", receiver_id="a", cid="t:x", type="t")]), "channels[0].cid"),
        (ds.EnsureChannelsRequest(campaign_id="c", sender_id="s", channels=[
            ds.ChannelSpec(recipient_id="r")]), "channels[0].receiver_id"),
        (ds.EnsureChannelsRequest(campaign_id="c", sender_id="s", channels=[
            ds.ChannelSpec(recipient_id="r", cid="nocolon")]), "channels[0].cid"),
        (ds.EnsureChannelsRequest(campaign_id="c", sender_id="s", sender_mode=7, channels=[ok]), "sender_mode"),
    ]
    for request, field in bad:
        await expect_error(svc.directory.EnsureChannels(request), grpc.StatusCode.INVALID_ARGUMENT, field)
    # 10,000 specs and 1,000 members are accepted.
    await svc.users("s")
    many = await ensure(svc, *[spec(f"u{i:05d}", id=f"c{i}") for i in range(10_000)], create_channels=True)
    assert len(many) == 10_000 and all(o.created for o in many)
    big = await ensure(svc, spec("a", id="big", members=[common_pb2.ChannelMemberTemplate(user_id=f"m{i}")
                                                         for i in range(1000)]), campaign="c2", create_channels=True)
    assert len(big[0].member_ids) == 1002
