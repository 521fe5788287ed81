"""PreviewDelivery: one recipient of a snapshot through the sending code (Addressing, EnsureChannels'
dry run, Composer), compared with what StartDelivery then writes for the same snapshot; what it
refuses; and that it writes nothing."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from delivery.helpers import all_messages, all_recipients, campaign, channels, start, struct, upsert_users, wait_done
from harness import violations
from herald.campaign.v1 import campaign_pb2
from herald.common.v1 import common_pb2
from herald.delivery.v1 import delivery_pb2, delivery_service_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2
from services.kit.limits import MAX_ID


async def preview(stubs, snapshot, **recipient) -> campaign_pb2.CampaignPreview:
    request = delivery_service_pb2.PreviewDeliveryRequest(campaign=snapshot, **recipient)
    return (await stubs.deliveries.PreviewDelivery(request)).preview


def without_time(message) -> dict:
    fields = MessageToDict(message, preserving_proto_field_name=True)
    fields.pop("created_at", None)
    return fields


async def test_previews_equal_what_the_delivery_then_writes(stubs):
    await upsert_users(stubs.directory, ["sender", "ann", "bob"])
    await upsert_users(stubs.directory, ["long"], custom=struct({"suffix": "x" * MAX_ID}))
    channel_template = common_pb2.ChannelTemplate(
        type="messaging", id="{{ receiver.id }}{{ receiver.custom.suffix }}",
        members_template=[common_pb2.ChannelMemberTemplate(user_id="{{ sender.id }}", channel_role="owner")])
    snapshot = campaign("p1", user_ids=["ann", "bob", "long", "ghost"], channel_template=channel_template,
                        message_template=common_pb2.MessageTemplate(
                            text="{{ receiver.name }} in {{ channel.id }} ({{ channel.member_count }})",
                            custom=struct({"who": "{{ receiver.id }}"})))
    previews = {t: await preview(stubs, snapshot, receiver_id=t) for t in ("ann", "bob", "long", "ghost")}
    long = previews["long"]
    assert (long.status, long.reason) == (campaign_pb2.PREVIEW_STATUS_FAILED,
                                          "invalid_channel: id must be at most 255 characters")
    assert previews["ann"].message.text == "Name ann in ann (2)"
    assert await channels(stubs, {}) == []  # nothing made

    await start(stubs, snapshot)
    await wait_done(stubs, "p1")
    logged = {r.target_id: r for r in await all_recipients(stubs, {"campaign_id": "p1"})}
    messages = {m.id: m for m in await all_messages(stubs, {"created_by_campaign_id": "p1"})}
    for target, shown in previews.items():
        row = logged[target]
        assert (row.status, row.reason, row.cid, row.message_id) == (
            shown.status, shown.reason, shown.cid, shown.message.id), target
        if row.status == delivery_pb2.RECIPIENT_STATUS_SENT:
            assert without_time(messages[row.message_id]) == without_time(shown.message), target


async def test_a_sender_gone_from_the_directory_still_renders(stubs):
    await upsert_users(stubs.directory, ["ann"])
    snapshot = campaign("p2", sender_id="gone", user_ids=["ann"], text="{{ sender.id }}:{{ sender.name }}")
    assert (await preview(stubs, snapshot, receiver_id="ann")).message.text == "gone:"
    snapshot.sender.CopyFrom(directory_pb2.User(id="gone", name="Gone"))  # the snapshot's copy, when it has one
    assert (await preview(stubs, snapshot, receiver_id="ann")).message.text == "gone:Gone"


async def test_channel_targets_are_looked_up_not_made(stubs):
    await upsert_users(stubs.directory, ["sender", "ann"])
    await stubs.directory.UpsertChannels(directory_service_pb2.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type="team", id="red", members=[directory_pb2.ChannelMember(user_id="ann")])]))
    snapshot = campaign("p3", segment_ids=["teams"], create_channels=False, text="to {{ channel.cid }}",
                        sender_mode=common_pb2.SENDER_MODE_INCLUDE)
    red = await preview(stubs, snapshot, cid="team:red")
    assert (red.status, red.channel_exists, list(red.member_ids), red.message.text) == (
        campaign_pb2.PREVIEW_STATUS_SENT, True, ["ann", "sender"], "to team:red")
    gone = await preview(stubs, snapshot, cid="team:gone")
    assert (gone.status, gone.reason) == (campaign_pb2.PREVIEW_STATUS_SKIPPED, "channel_not_found")
    [stored] = await channels(stubs, {})
    assert [m.user_id for m in stored.members] == ["ann"]  # the sender was not added


@pytest.mark.parametrize("snapshot, recipient, fields", [
    (campaign("c", user_ids=["a"]), {}, ["receiver_id"]),
    (campaign("c", user_ids=["a"]), {"receiver_id": "a", "cid": "t:x"}, ["cid"]),
    (campaign("c", user_ids=["a"]), {"cid": "t:x"}, ["cid"]),
    (campaign("c", segment_ids=["s"]), {"cid": "nocolon"}, ["cid"]),
    (campaign("c", segment_ids=["s"]), {"receiver_id": "a\x00"}, ["receiver_id"]),
    (campaign("c", user_ids=["a"], text=""), {"receiver_id": "a"}, ["campaign.message_template.text"]),
    (campaign("", user_ids=["a"]), {"receiver_id": "a"}, ["campaign.id"]),
])
async def test_what_a_preview_refuses(stubs, snapshot, recipient, fields):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await preview(stubs, snapshot, **recipient)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == fields


def test_a_preview_message_is_a_message_without_created_at():
    """PreviewMessage is made from a Message's bytes (services.delivery_svc.convert.preview_message):
    the same fields, numbers and types, but created_at."""
    def shape(descriptor) -> set[tuple]:
        return {(f.name, f.number, f.type, f.message_type.full_name if f.message_type else "")
                for f in descriptor.fields}

    message = shape(delivery_pb2.Message.DESCRIPTOR)
    assert shape(campaign_pb2.PreviewMessage.DESCRIPTOR) == {f for f in message if f[0] != "created_at"}
