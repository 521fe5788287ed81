"""PauseDelivery and the resume by StartDelivery (DESIGN §10.2) at the delivery service: a paused
delivery writes nothing more, survives as paused, resumes with the snapshot it is given (its new
text for the recipients not sent yet), in a new generation; stop applies to a paused delivery."""

from __future__ import annotations

import grpc
import pytest

from harness import eventually
from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_service_pb2 as ds

from delivery.helpers import Stubs, all_messages, campaign, get, start, upsert_users, wait_done

PAUSED, IN_PROGRESS = campaign_pb2.CAMPAIGN_STATUS_PAUSED, campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS
USERS = [f"u{i:04d}" for i in range(1500)]


async def _pause(stubs: Stubs, campaign_id: str):
    return (await stubs.deliveries.PauseDelivery(ds.PauseDeliveryRequest(campaign_id=campaign_id))).delivery


async def test_a_paused_delivery_resumes_with_its_new_text_and_sends_everyone_once(make_system):
    _, stubs = await make_system(delivery_batch_size=50, max_send_rate=1500)
    await upsert_users(stubs.directory, ["sender", *USERS])
    first = campaign("p", user_ids=USERS, text="old {{ receiver.id }}")
    await start(stubs, first)
    await eventually(lambda: get(stubs, "p"), lambda d: d.stats.stats_messages_sent >= 200, what="200 sent")
    paused = await _pause(stubs, "p")
    assert paused.status == PAUSED and paused.stats.send_rate == 0 and not paused.stats.HasField("eta")
    sent_at_pause = paused.stats.stats_messages_sent
    assert 0 < sent_at_pause < len(USERS)
    assert (await _pause(stubs, "p")).status == PAUSED  # again: as it is
    before = {m.cid for m in await all_messages(stubs, {"created_by_campaign_id": "p"})}
    assert len(before) == sent_at_pause  # nothing is written while paused
    assert (await get(stubs, "p")).stats.stats_messages_sent == sent_at_pause

    resumed = await start(stubs, campaign("p", user_ids=USERS, text="new {{ receiver.id }}"))
    assert resumed.status == IN_PROGRESS
    done = await wait_done(stubs, "p")
    assert done.stats.stats_messages_sent == len(USERS) and done.stats.stats_channels_created == len(USERS)
    messages = await all_messages(stubs, {"created_by_campaign_id": "p"})
    assert len(messages) == len({m.id for m in messages}) == len(USERS)
    for message in messages:
        user = message.cid.removeprefix("messaging:").removesuffix("-sender")
        assert message.text == f"{'old' if message.cid in before else 'new'} {user}"


async def test_a_paused_delivery_stops_and_others_are_returned_as_they_are(make_system):
    _, stubs = await make_system(delivery_batch_size=20, max_send_rate=200)
    await upsert_users(stubs.directory, ["sender", *USERS])
    await start(stubs, campaign("s", user_ids=USERS))
    await eventually(lambda: get(stubs, "s"), lambda d: d.stats.stats_messages_sent > 0, what="sending")
    sent = (await _pause(stubs, "s")).stats.stats_messages_sent
    stopped = (await stubs.deliveries.StopDelivery(ds.StopDeliveryRequest(campaign_id="s"))).delivery
    assert stopped.status == campaign_pb2.CAMPAIGN_STATUS_STOPPED and stopped.stats.stats_messages_sent == sent
    assert (await _pause(stubs, "s")).status == campaign_pb2.CAMPAIGN_STATUS_STOPPED  # not paused: as it is
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await _pause(stubs, "nope")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await _pause(stubs, "")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
