"""Struct and Timestamp conversions shared by the services' convert modules.

`Struct` ↔ dict goes through a small walker: `json_format.MessageToDict` costs about 1.5× as
much, and these conversions sit on hot paths (imports, recipient streams, rendering).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, overload

from google.protobuf import struct_pb2, timestamp_pb2


def value_to_python(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        # Whole numbers come back as ints, so custom data round-trips as it was written.
        return int(number) if number.is_integer() and abs(number) < 2 ** 53 else number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [value_to_python(item) for item in value.list_value.values]
    return None


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    fields = struct.fields  # keys then lookups: cheaper than .items() on a upb map
    return {key: value_to_python(fields[key]) for key in fields}


def struct_from(data: Mapping[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if data:
        struct.update(data)
    return struct


def fill_struct(target: struct_pb2.Struct, data: Mapping[str, Any] | None) -> None:
    if data:
        target.update(data)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@overload
def timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp: ...
@overload
def timestamp(value: None) -> None: ...
def timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    fill_timestamp(ts, value)
    return ts


_last_stamp: tuple[dt.datetime | None, int, int] = (None, 0, 0)


def fill_timestamp(target: timestamp_pb2.Timestamp, when: dt.datetime | None) -> None:
    """Sets an aware datetime; 5× cheaper than `Timestamp.FromDatetime` (pure Python) on the
    hot paths that stamp every channel and member. A batch stamps its rows with one datetime:
    its seconds and nanos are worked out once."""
    global _last_stamp
    if when is None:
        return
    last, seconds, nanos = _last_stamp
    if when is not last:
        since = when - _EPOCH  # timedelta keeps microseconds ≥ 0, as Timestamp keeps nanos ≥ 0
        seconds, nanos = since.days * 86400 + since.seconds, since.microseconds * 1000
        _last_stamp = (when, seconds, nanos)
    target.seconds = seconds
    target.nanos = nanos


def from_timestamp(ts: timestamp_pb2.Timestamp) -> dt.datetime:
    return ts.ToDatetime(tzinfo=dt.timezone.utc)
