"""kit.protos conversions agree with protobuf's own (slower) ones."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from services.kit.protos import fill_timestamp, from_timestamp, struct_from, struct_to_dict, timestamp

UTC = dt.timezone.utc


@pytest.mark.parametrize("when", [
    dt.datetime(2026, 11, 26, 7, 8, 9, 123456, tzinfo=UTC),
    dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # before the epoch: nanos stay ≥ 0
    dt.datetime(2026, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
])
def test_timestamps_match_from_datetime(when):
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(when)
    made = timestamp_pb2.Timestamp()
    fill_timestamp(made, when)
    assert made == expected == timestamp(when)
    assert from_timestamp(made) == when
    assert timestamp(None) is None


def test_struct_round_trip_keeps_whole_numbers_as_ints():
    data = {"n": 3, "x": 1.5, "s": "a", "b": True, "none": None, "list": [1, "two", {"k": [False]}],
            "nested": {"deep": {"v": -7}}}
    struct = struct_from(data)
    assert struct_to_dict(struct) == data
    assert struct_to_dict(struct) == json_format.MessageToDict(struct) | {"n": 3, "nested": {"deep": {"v": -7}},
                                                                           "list": [1, "two", {"k": [False]}]}
    assert struct_from(None) == struct_pb2.Struct()
