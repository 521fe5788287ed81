"""A delivery against the real segment service: what is written per recipient, the skipped and
failed ones, channel targets, and the stats."""

from __future__ import annotations

import sqlalchemy as sa

from herald.campaign.v1 import campaign_pb2
from herald.common.v1 import common_pb2
from herald.delivery.v1 import delivery_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2
from services.kit.db import make_engine

from delivery.helpers import (all_messages, all_recipients, campaign, channel_segment, channels, start, struct,
                              upsert_users, user_segment, wait_done)

COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED


async def test_user_ids_campaign_sends_one_message_each_and_skips_unknown_users(make_system):
    system, stubs = await make_system(delivery_batch_size=7)
    users = [f"u{i:02d}" for i in range(20)]
    await upsert_users(stubs.directory, ["sender", *users])
    await stubs.directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=[
        directory_pb2.User(id="u03", name="Zoe", custom=struct({"bio": "b" * 6000})),
        directory_pb2.User(id="u04", name="Max", custom=struct({"nickname": "maxi"}))]))
    template = common_pb2.MessageTemplate(
        text="Hi {{ receiver.name }}{% if receiver.custom.bio %} {{ receiver.custom.bio }}{% endif %}"
             " [{{ receiver.custom.nickname }}] from {{ sender.name }}",
        custom=struct({"kind": "promo", "for": "{{ receiver.id }}"}),
        attachments=[struct({"type": "image", "image_url": "https://x/{{ receiver.id }}.png"})], poll_id="poll-7")
    snapshot = campaign("c1", user_ids=[*users, "ghost-1", "ghost-2", "sender"], message_template=template)

    delivery = await start(stubs, snapshot)
    assert delivery.status == campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS
    done = await wait_done(stubs, "c1")

    assert done.status == COMPLETED and done.stats.progress == 1.0
    stats = done.stats
    # The sender is left out of the audience; two unknown users are skipped, Zoe's text is too long.
    assert (stats.recipients_total, stats.recipients_skipped, stats.recipients_failed) == (22, 2, 1)
    assert (stats.stats_messages_sent, stats.stats_users_sent, stats.stats_channels_created) == (19, 19, 20)
    assert stats.HasField("stats_started_at") and stats.HasField("stats_completed_at")

    messages = {m.cid: m for m in await all_messages(stubs, {"created_by_campaign_id": "c1"})}
    assert len(messages) == 19 and "messaging:u03-sender" not in messages
    max_message = messages["messaging:u04-sender"]
    assert max_message.text == "Hi Max [maxi] from Name sender"
    assert (max_message.type, max_message.user_id, max_message.poll_id) == ("regular", "sender", "poll-7")
    assert dict(max_message.custom) == {"kind": "promo", "for": "u04", "campaign_id": "c1"}
    assert dict(max_message.attachments[0]) == {"type": "image", "image_url": "https://x/u04.png"}
    assert messages["messaging:u05-sender"].text == "Hi Name u05 [] from Name sender"

    log = {r.target_id: r for r in await all_recipients(stubs, {"campaign_id": "c1"})}
    assert len(log) == 22
    assert (log["ghost-1"].status, log["ghost-1"].reason) == (delivery_pb2.RECIPIENT_STATUS_SKIPPED, "user_not_found")
    assert (log["u03"].status, log["u03"].reason, log["u03"].cid) == (
        delivery_pb2.RECIPIENT_STATUS_FAILED, "text_too_long", "messaging:u03-sender")
    sent = log["u04"]
    assert (sent.status, sent.cid, sent.message_id) == (delivery_pb2.RECIPIENT_STATUS_SENT, "messaging:u04-sender",
                                                       max_message.id)

    # The outbox got one message.new per message and one channel.created per created channel.
    engine = make_engine(system.settings.delivery_db_url)
    async with engine.connect() as conn:
        counts = dict((await conn.execute(sa.text("SELECT type, count(*) FROM events GROUP BY type"))).all())
    await engine.dispose()
    assert counts == {"message.new": 19, "channel.created": 20}


async def test_without_create_channels_a_missing_channel_is_skipped(stubs):
    await upsert_users(stubs.directory, ["sender", "a", "b"])
    await stubs.directory.UpsertChannels(directory_service_pb2.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="messaging", id="a-sender", members=[
            directory_pb2.ChannelMember(user_id="a"), directory_pb2.ChannelMember(user_id="sender")])]))
    snapshot = campaign("c2", user_ids=["a", "b"], create_channels=False,
                        channel_template=common_pb2.ChannelTemplate(type="messaging",
                                                                    id="{{ receiver.id }}-{{ sender.id }}"))
    await start(stubs, snapshot)
    done = await wait_done(stubs, "c2")
    assert (done.stats.stats_messages_sent, done.stats.recipients_skipped, done.stats.stats_channels_created) == (1, 1, 0)
    log = {r.target_id: r for r in await all_recipients(stubs, {"campaign_id": "c2"})}
    assert (log["b"].status, log["b"].reason) == (delivery_pb2.RECIPIENT_STATUS_SKIPPED, "channel_not_found")


async def test_channel_segment_sends_one_message_per_channel_and_counts_members_reached(stubs):
    await upsert_users(stubs.directory, ["sender", "a", "b", "c"])
    members = lambda *ids: [directory_pb2.ChannelMember(user_id=i) for i in ids]  # noqa: E731
    await stubs.directory.UpsertChannels(directory_service_pb2.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="team", id="one", members=members("sender", "a", "b")),
        directory_pb2.Channel(type="team", id="two", members=members("b", "c"))]))
    segment_id = await channel_segment(stubs.segments, ["team:one", "team:two", "team:ghost"])
    snapshot = campaign("c3", segment_ids=[segment_id], create_channels=False, channel_template=None,
                        text="News for {{ channel.id }} ({{ channel.member_count }}) from {{ sender.id }}")
    await start(stubs, snapshot)
    done = await wait_done(stubs, "c3")
    stats = done.stats
    assert (stats.stats_messages_sent, stats.stats_users_sent, stats.recipients_skipped) == (2, 4, 1)
    texts = {m.cid: m.text for m in await all_messages(stubs, {"created_by_campaign_id": "c3"})}
    assert texts == {"team:one": "News for one (3) from sender", "team:two": "News for two (2) from sender"}
    log = {r.target_id: r for r in await all_recipients(stubs, {"campaign_id": "c3"})}
    assert log["team:ghost"].reason == "channel_not_found"


async def test_user_segment_campaign_reaches_the_segment(stubs):
    await upsert_users(stubs.directory, ["sender", *(f"m{i}" for i in range(30))])
    segment_id = await user_segment(stubs.segments, [f"m{i}" for i in range(0, 30, 2)])
    await start(stubs, campaign("c4", segment_ids=[segment_id]))
    done = await wait_done(stubs, "c4")
    assert (done.stats.recipients_total, done.stats.stats_messages_sent) == (15, 15)


async def test_a_recipient_whose_rendered_channel_is_invalid_fails_alone(stubs):
    # Each user renders one part of the channel spec past the segment service's rules; only "ok" is fine.
    await stubs.directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=[
        directory_pb2.User(id="sender", name="Sender"), directory_pb2.User(id="buddy", name="Buddy"),
        directory_pb2.User(id="ok", name="Ok", custom=struct({"buddy": "buddy", "team": "t"})),
        directory_pb2.User(id="long", name="x" * 256, custom=struct({"buddy": "buddy", "team": "t"})),
        directory_pb2.User(id="nameless", name="", custom=struct({"buddy": "buddy", "team": "t"})),
        directory_pb2.User(id="teamy", name="Teamy", custom=struct({"buddy": "buddy", "team": "t" * 1001})),
        directory_pb2.User(id="lonely", name="Lonely", custom=struct({"team": "t"}))]))
    template = common_pb2.ChannelTemplate(
        type="messaging", id="{{ receiver.name }}", team="{{ receiver.custom.team }}",
        members_template=[common_pb2.ChannelMemberTemplate(user_id="{{ receiver.custom.buddy }}")])
    await start(stubs, campaign("c1", user_ids=["ok", "long", "nameless", "teamy", "lonely"],
                                channel_template=template))
    done = await wait_done(stubs, "c1")
    assert (done.status, done.stats.stats_messages_sent, done.stats.recipients_failed) == (COMPLETED, 1, 4)
    assert done.stats.stats_channels_created == 1
    log = {r.target_id: (r.status, r.reason) for r in await all_recipients(stubs, {"campaign_id": "c1"})}
    failed = delivery_pb2.RECIPIENT_STATUS_FAILED
    assert log == {
        "ok": (delivery_pb2.RECIPIENT_STATUS_SENT, ""),
        "long": (failed, "invalid_channel: id must be at most 255 characters"),
        # An id template that renders empty fails; only an absent one derives the id.
        "nameless": (failed, "invalid_channel: id is required"),
        "teamy": (failed, "invalid_channel: team must be at most 1000 characters"),
        "lonely": (failed, "invalid_channel: members[0].user_id is required"),
    }
    [made] = await channels(stubs, {"type": "messaging"})
    assert made.cid == "messaging:Ok" and {m.user_id for m in made.members} == {"ok", "buddy", "sender"}


async def test_receiver_renders_inside_members_template_custom(stubs):
    await upsert_users(stubs.directory, ["sender", "a", "mod"])
    template = common_pb2.ChannelTemplate(type="messaging", members_template=[common_pb2.ChannelMemberTemplate(
        user_id="mod", custom=struct({"note": "for {{ receiver.id }} ({{ receiver.name }})"}))])
    await start(stubs, campaign("c1", user_ids=["a"], text="Hello", channel_template=template))
    assert (await wait_done(stubs, "c1")).stats.stats_messages_sent == 1
    [made] = await channels(stubs, {"type": "messaging"})
    assert {m.user_id: dict(m.custom) for m in made.members}["mod"] == {"note": "for a (Name a)"}


async def test_unknown_users_are_user_not_found_whatever_their_ids_look_like(stubs):
    await upsert_users(stubs.directory, ["sender", "a"])
    mixed = await user_segment(stubs.segments, ["a", "email:ghost@x.org"])
    only_ghosts = await user_segment(stubs.segments, ["team:ghost"])
    await start(stubs, campaign("c1", segment_ids=[mixed]))
    await start(stubs, campaign("c2", segment_ids=[only_ghosts]))
    await start(stubs, campaign("c3", user_ids=["a", "x:y"]))
    for campaign_id in ("c1", "c2", "c3"):
        await wait_done(stubs, campaign_id)
    skipped = await all_recipients(stubs, {"status": "skipped"})
    assert [(r.campaign_id, r.target_id, r.reason) for r in skipped] == [
        ("c1", "email:ghost@x.org", "user_not_found"), ("c2", "team:ghost", "user_not_found"),
        ("c3", "x:y", "user_not_found")]


async def test_a_delivery_starts_with_the_count_its_snapshot_carries(stubs):
    await upsert_users(stubs.directory, ["sender", "u1", "u2", "u3"])
    counted = campaign("counted", user_ids=["u1", "u2", "u3"], stats=campaign_pb2.CampaignStats(recipients_total=3))
    assert (await start(stubs, counted)).stats.recipients_total == 3  # in the answer already, not counted later
    # A snapshot without a count (from an older campaign service) is counted by the engine.
    uncounted = campaign("uncounted", user_ids=["u1", "u2"])
    for snapshot, total in ((counted, 3), (uncounted, 2)):
        await start(stubs, snapshot)
        done = await wait_done(stubs, snapshot.id)
        assert (done.status, done.stats.recipients_total, done.stats.stats_messages_sent) == (COMPLETED, total, total)
