"""PreviewCampaign over the three real services (DESIGN §10.2, issue 15): the preview of a
recipient equals what that recipient then gets, field by field — the message QueryMessages
returns, the recipient log's status, reason and cid, the channel and its members — for
recipients whose channel exists, is created, is missing, whose message is too long or fails to
render, and who do not exist; for user and channel audiences. Previewing writes nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest
from google.protobuf.json_format import MessageToDict

from harness import TEST_SECRET, serve_system
from herald.campaign.v1 import campaign_pb2
from services.client import HeraldClient
from services.client.errors import InvalidArgument, NotFound

SENT, SKIPPED, FAILED = (campaign_pb2.PREVIEW_STATUS_SENT, campaign_pb2.PREVIEW_STATUS_SKIPPED,
                         campaign_pb2.PREVIEW_STATUS_FAILED)

# Every kind of template part, with the receiver, the sender and the channel in them.
MESSAGE = {
    "text": "Hi {{ receiver.name }}, {{ sender.name }} here; {{ channel.member_count }} of us in {{ channel.cid }}."
            "{% if receiver.custom.d is defined %} Share: {{ 100 // receiver.custom.d }}.{% endif %}",
    "custom": {"greeting": "Hello {{ receiver.custom.city }}", "tier": "{{ receiver.custom.tier }}", "fixed": 7},
    "attachments": [{"type": "image", "title": "{{ receiver.name }}'s card", "image_url": "https://x.test/a.png"}],
    "poll_id": "poll-1",
}
CHANNEL = {"type": "messaging", "id": "{{ receiver.id }}-{{ sender.id }}",
           "custom": {"origin": "{{ sender.id }}"},
           "members_template": [{"user_id": "helper", "channel_role": "channel_moderator"}]}
USERS = [
    {"id": "boss", "name": "Boss"},
    {"id": "helper", "name": "Helper"},
    {"id": "ann", "name": "Ann", "custom": {"city": "Utrecht", "tier": "gold"}},  # a channel to be created
    {"id": "bob", "name": "Bob", "custom": {"city": "Gent", "d": 4}},  # his channel exists, without the sender
    {"id": "carl", "name": "Carl", "custom": {"d": 0}},  # 100 // 0: render_error
    {"id": "dora", "name": "D" * 5001},  # text_too_long
]
AUDIENCE = ["ann", "bob", "carl", "dora", "ghost"]  # ghost: no such user


@pytest.fixture
async def herald(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path) as system:
        async with HeraldClient.from_settings(replace(system.settings, api_secret=TEST_SECRET)) as client:
            yield client


def message_fields(message) -> dict:
    """A message's fields but when it was written (a preview writes nothing)."""
    fields = MessageToDict(message, preserving_proto_field_name=True)
    fields.pop("created_at", None)
    return fields


async def sent_campaign(herald: HeraldClient, campaign_id: str) -> None:
    await herald.start_campaign(campaign_id)
    ended = [c async for c in herald.watch_campaign(campaign_id)][-1]
    assert ended.status == campaign_pb2.CAMPAIGN_STATUS_COMPLETED


async def assert_received_as_previewed(herald: HeraldClient, campaign_id: str,
                                       previews: dict[str, campaign_pb2.CampaignPreview]) -> None:
    """Each recipient's log row, message and channel are what its preview said."""
    logged = {r.target_id: r async for r in herald.iter_recipients({"campaign_id": campaign_id})}
    messages = {m.id: m async for m in herald.iter_messages({"created_by_campaign_id": campaign_id})}
    assert sorted(logged) == sorted(previews)
    for target, preview in previews.items():
        row = logged[target]
        assert (row.status, row.reason, row.cid) == (preview.status, preview.reason, preview.cid), target
        assert row.message_id == preview.message.id, target
        if preview.status == SENT:
            assert message_fields(messages.pop(row.message_id)) == message_fields(preview.message), target
        if preview.cid:
            channel = (await herald.query_channels({"cid": preview.cid})).channels[0]
            assert sorted(m.user_id for m in channel.members) == list(preview.member_ids), target
            assert (channel.team, dict(channel.custom), channel.created_by_id) == (
                preview.channel.team, dict(preview.channel.custom), preview.channel.created_by_id), target
    assert not messages  # and nobody got a message the previews did not show


async def test_a_preview_of_each_recipient_equals_what_it_then_receives(herald):
    await herald.upsert_users(USERS)
    await herald.upsert_channels([{"type": "messaging", "id": "bob-boss", "custom": {"origin": "before"},
                                   "members": [{"user_id": "bob"}, {"user_id": "helper"}]}])
    await herald.create_campaign(id="spring", sender_id="boss", user_ids=AUDIENCE, message_template=MESSAGE,
                                 channel_template=CHANNEL, create_channels=True, sender_mode="include")

    previews = {target: await herald.preview_campaign("spring", receiver_id=target) for target in AUDIENCE}
    ann, bob, carl, dora, ghost = (previews[t] for t in AUDIENCE)
    assert (ann.status, ann.cid, ann.channel_exists, list(ann.member_ids)) == (
        SENT, "messaging:ann-boss", False, ["ann", "boss", "helper"])
    assert ann.message.text == "Hi Ann, Boss here; 3 of us in messaging:ann-boss."
    assert MessageToDict(ann.message.custom) == {"greeting": "Hello Utrecht", "tier": "gold", "fixed": 7,
                                                 "campaign_id": "spring"}
    assert (ann.message.attachments[0]["title"], ann.message.poll_id, ann.message.type) == (
        "Ann's card", "poll-1", "regular")
    assert (ann.channel.created_by_id, dict(ann.channel.custom)) == ("boss", {"origin": "boss"})
    assert (bob.status, bob.channel_exists, list(bob.member_ids)) == (SENT, True, ["bob", "boss", "helper"])
    assert bob.message.text == "Hi Bob, Boss here; 3 of us in messaging:bob-boss. Share: 25."
    assert (carl.status, carl.reason, carl.cid) == (FAILED, "render_error", "messaging:carl-boss")
    assert "division" in carl.detail and not carl.HasField("message")
    assert (dora.status, dora.reason, dora.detail) == (FAILED, "text_too_long", "")
    assert (ghost.status, ghost.reason, ghost.cid, ghost.channel_exists) == (SKIPPED, "user_not_found", "", False)

    # Previewing wrote nothing: no channel, member, message or delivery; the campaign is a draft.
    assert [c.cid async for c in herald.iter_channels()] == ["messaging:bob-boss"]
    assert [m.user_id for m in (await herald.query_channels({"cid": "messaging:bob-boss"})).channels[0].members] == [
        "bob", "helper"]
    assert [m async for m in herald.iter_messages({"created_by_campaign_id": "spring"})] == []
    with pytest.raises(NotFound):
        await herald.get_delivery("spring")
    assert (await herald.get_campaign("spring")).status == campaign_pb2.CAMPAIGN_STATUS_DRAFT

    await sent_campaign(herald, "spring")
    await assert_received_as_previewed(herald, "spring", previews)

    # Once sent, the preview still answers (any status): the channel exists now.
    after = await herald.preview_campaign("spring", receiver_id="ann")
    assert (after.channel_exists, message_fields(after.message)) == (True, message_fields(ann.message))


async def test_channel_audiences_preview_by_cid(herald):
    await herald.upsert_users(USERS[:4])
    await herald.upsert_channels([
        {"type": "team", "id": "red", "custom": {"motto": "Onward"}, "members": [{"user_id": "ann"}]},
        {"type": "team", "id": "blue", "members": [{"user_id": "bob"}, {"user_id": "boss"}]}])
    await herald.create_segment("channel", id="teams", filter={"type": "team"})
    assert await herald.count_recipients(segment_ids=["teams"], sender_id="boss") == 2
    await herald.create_campaign(id="teams-news", sender_id="boss", segment_ids=["teams"],
                                 message_template={"text": "{{ channel.motto or 'News' }} for {{ channel.member_count }}"},
                                 sender_mode="include")

    previews = {cid: await herald.preview_campaign("teams-news", cid=cid) for cid in ("team:blue", "team:red")}
    red = previews["team:red"]
    assert (red.status, red.channel_exists, list(red.member_ids), red.message.text) == (
        SENT, True, ["ann", "boss"], "Onward for 2")
    missing = await herald.preview_campaign("teams-news", cid="team:none")
    assert (missing.status, missing.reason, missing.cid) == (SKIPPED, "channel_not_found", "")
    with pytest.raises(InvalidArgument) as refused:
        await herald.preview_campaign("teams-news", receiver_id="ann")
    assert [v.field for v in refused.value.field_violations] == ["receiver_id"]

    await sent_campaign(herald, "teams-news")
    await assert_received_as_previewed(herald, "teams-news", previews)


async def test_what_a_preview_refuses(herald):
    await herald.upsert_users(USERS[:3])
    await herald.create_campaign(id="hi", sender_id="boss", user_ids=["ann"], message_template={"text": "Hi"})
    cases = [({"receiver_id": "ann", "cid": "messaging:x"}, "cid"), ({}, "receiver_id"),
             ({"cid": "messaging:x"}, "cid"), ({"cid": "no-colon"}, "cid"), ({"receiver_id": "a" * 256}, "receiver_id")]
    for recipient, field in cases:
        with pytest.raises(InvalidArgument) as refused:
            await herald.preview_campaign("hi", **recipient)
        assert [v.field for v in refused.value.field_violations] == [field], recipient
    with pytest.raises(NotFound) as unknown:
        await herald.preview_campaign("nope", receiver_id="ann")
    assert unknown.value.reason == "CAMPAIGN_NOT_FOUND"
    # Without a channel template nor create_channels the derived channel is looked for, not made.
    preview = await herald.preview_campaign("hi", receiver_id="ann")
    assert (preview.status, preview.reason) == (SKIPPED, "channel_not_found")
