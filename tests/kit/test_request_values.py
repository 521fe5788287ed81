"""The rules every decoded request obeys (services.kit.request_values): finite numbers in every
Struct / Value, timestamps in range, each violation naming the request's own field path; and the
byte scan that skips the number walk agrees with the full walk."""

from __future__ import annotations

import math

import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from herald.campaign.v1 import campaign_service_pb2 as cs
from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds
from services.kit.errors import InvalidArgument
from services.kit.request_values import check_request

NON_FINITE = [math.nan, math.inf, -math.inf, -math.nan]


def _users(custom: dict) -> ds.UpsertUsersRequest:
    request = ds.UpsertUsersRequest(users=[directory_pb2.User(id=f"u{i}") for i in range(3)])
    request.users[2].custom.update(custom)
    return request


def _violation(request, *, scan: bool) -> str | None:
    try:
        check_request(request, request.SerializeToString() if scan else None)
    except InvalidArgument as exc:
        [violation] = exc.violations
        return violation.field
    return None


@pytest.mark.parametrize("number", NON_FINITE, ids=["nan", "inf", "-inf", "-nan"])
@pytest.mark.parametrize("custom,field", [
    (lambda x: {"score": x}, "users[2].custom.score"),
    (lambda x: {"a": {"b": [1, "s", x]}}, "users[2].custom.a.b[2]"),
    (lambda x: {"ok": 1.5, "list": [[x]]}, "users[2].custom.list[0][0]"),
], ids=["top", "nested", "list-in-list"])
@pytest.mark.parametrize("scan", [True, False], ids=["scan", "walk"])
def test_a_non_finite_number_is_named_by_its_path(number, custom, field, scan):
    assert _violation(_users(custom(number)), scan=scan) == field


@pytest.mark.parametrize("scan", [True, False], ids=["scan", "walk"])
def test_finite_numbers_pass_whatever_their_bytes(scan):
    # Extremes and doubles whose bytes look like the scan's pattern in part.
    numbers = [0.0, -0.0, 1e308, -1e308, 5e-324, 2.0 ** 1023 * 1.999, -(2.0 ** 1023) * 1.999, 255.0, 1.0e16]
    assert _violation(_users({"n": numbers, "m": {"x": numbers[3]}}), scan=scan) is None


def test_structs_deep_in_other_messages_are_checked():
    template = common_pb2.MessageTemplate(text="hi")
    template.attachments.add().update({"size": 1})
    template.attachments.add().update({"size": math.inf})
    assert _violation(cs.CreateCampaignRequest(message_template=template), scan=True) == \
        "message_template.attachments[1].size"
    channel = common_pb2.ChannelTemplate(members_template=[common_pb2.ChannelMemberTemplate(user_id="a")])
    channel.members_template[0].custom.update({"w": math.nan})
    assert _violation(cs.CreateCampaignRequest(channel_template=channel), scan=True) == \
        "channel_template.members_template[0].custom.w"


def test_a_bare_value_is_checked():
    value = struct_pb2.Value(list_value=struct_pb2.ListValue(values=[struct_pb2.Value(number_value=math.nan)]))
    request = ds.QueryUsersRequest(filter=struct_pb2.Struct(fields={"score": value}))
    assert _violation(request, scan=True) == "filter.score[0]"


@pytest.mark.parametrize("seconds,nanos,field", [
    (-62_135_596_800, 0, None),  # 0001-01-01T00:00:00Z
    (253_402_300_799, 999_999_999, None),  # 9999-12-31T23:59:59.999999999Z
    (-62_135_596_801, 0, "scheduled_for"),
    (253_402_300_800, 0, "scheduled_for"),
    (-2 ** 63, 0, "scheduled_for"),
    (0, 1_000_000_000, "scheduled_for.nanos"),
    (0, -1, "scheduled_for.nanos"),
], ids=["min", "max", "before-min", "after-max", "int64-min", "nanos-over", "nanos-negative"])
def test_timestamps_lie_within_years_1_to_9999(seconds, nanos, field):
    request = cs.StartCampaignRequest(id="c", scheduled_for=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))
    assert _violation(request, scan=True) == field
