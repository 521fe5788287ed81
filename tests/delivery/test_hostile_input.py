"""Hostile values through the real delivery service (DESIGN §10.3): non-finite numbers and
out-of-range timestamps in a campaign snapshot or a filter, filters past their budgets, cursors
not made here, on every Query RPC. Each is INVALID_ARGUMENT naming the field, never INTERNAL."""

from __future__ import annotations

import math

import grpc
import pytest
from google.protobuf import timestamp_pb2

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_service_pb2 as ds, message_service_pb2 as ms

from delivery.helpers import struct
from harness import error_reason, violations

QUERIES = {
    "QueryMessages": lambda stubs: (stubs.messages.QueryMessages, ms.QueryMessagesRequest),
    "QueryDeadLetters": lambda stubs: (stubs.messages.QueryDeadLetters, ms.QueryDeadLettersRequest),
    "QueryRecipients": lambda stubs: (stubs.deliveries.QueryRecipients, ds.QueryRecipientsRequest),
}
# A field each query filters on: a string one, and (where there is one) a datetime.
FIELDS = {"QueryMessages": ("cid", "created_at"), "QueryDeadLetters": ("destination", "created_at"),
          "QueryRecipients": ("target_id", None)}


async def _refused(call, field: str, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    exc = caught.value
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
    assert violations(exc) == [field], exc.details()
    assert error_reason(exc) == ("delivery.herald", reason), exc.details()


@pytest.mark.parametrize("query", list(QUERIES))
async def test_every_query_refuses_hostile_filters_and_cursors(stubs, query):
    method, request = QUERIES[query](stubs)
    text, when = FIELDS[query]
    await method(request(filter=struct({text: {"$in": ["a"] * 10_000}})))
    cases = [
        ({text: {"$in": ["a"] * 10_001}}, f"filter.{text}.$in", "INVALID_FILTER"),
        ({"$and": [{text: "a"}] * 101}, "filter.$and", "INVALID_FILTER"),
        ({text: {"$gt": math.inf}}, f"filter.{text}.$gt", "INVALID_ARGUMENT"),
    ]
    if when:
        cases.append(({when: {"$lt": "0001-01-01T00:00:00+00:01"}}, f"filter.{when}.$lt", "INVALID_FILTER"))
    for filter_, field, reason in cases:
        await _refused(method(request(filter=struct(filter_))), field, reason)
    for cursor in ["garbage", "eyJrIjpbXX0", "eyJrIjpbXX0.AAAA"]:
        await _refused(method(request(next=cursor)), "next", "CURSOR_INVALID")


async def test_a_snapshot_with_hostile_values_is_refused(stubs):
    campaign = campaign_pb2.Campaign(id="k1", sender_id="s", user_ids=["u1"],
                                     scheduled_for=timestamp_pb2.Timestamp(seconds=-2 ** 62))
    campaign.message_template.text = "Hi"
    await _refused(stubs.deliveries.StartDelivery(ds.StartDeliveryRequest(campaign=campaign)),
                   "campaign.scheduled_for", "INVALID_ARGUMENT")
    campaign.ClearField("scheduled_for")
    campaign.message_template.custom.update({"x": {"y": -math.inf}})
    await _refused(stubs.deliveries.StartDelivery(ds.StartDeliveryRequest(campaign=campaign)),
                   "campaign.message_template.custom.x.y", "INVALID_ARGUMENT")
