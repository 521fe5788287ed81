"""The JSON of an event as webhooks carry it (DESIGN §5): one object with snake_case keys, `type`,
`created_at`, and the full objects at the top level (`campaign`, `message`, `channel`,
`members`), as in the reference. Enums are the reference's lowercase words (`in_progress`,
`channel_moderator`), times RFC 3339 UTC strings, counters JSON numbers.

A small walker over the proto descriptors instead of `json_format.MessageToDict`, which writes
int64 as strings and enums as their proto names. Unset message fields, unset optional scalars
and `_UNSPECIFIED` enums are left out; every other field is there, zero values included.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from herald.delivery.v1 import delivery_pb2
from services.kit.protos import struct_to_dict

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def rfc3339(ts: timestamp_pb2.Timestamp) -> str:
    """`2026-07-01T12:30:15.250000Z`."""
    when = _EPOCH + dt.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_object(event: delivery_pb2.Event) -> dict[str, Any]:
    body: dict[str, Any] = {"type": event.type, "created_at": rfc3339(event.created_at)}
    if event.cid:
        channel_type, _, channel_id = event.cid.partition(":")
        body.update(cid=event.cid, channel_type=channel_type, channel_id=channel_id)
    for name in ("campaign", "message", "channel"):
        if event.HasField(name):
            body[name] = json_object(getattr(event, name))
    if event.members:
        body["members"] = [json_object(member) for member in event.members]
    return body


def webhook_body(event: delivery_pb2.Event) -> bytes:
    """The exact bytes POSTed (and signed) for an event: the same for every attempt and replay."""
    return json.dumps(event_object(event), separators=(",", ":"), ensure_ascii=False).encode()


def json_object(message: Message) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for field, convert, explicit_presence in _fields(message.DESCRIPTOR):
        if field.is_repeated:
            items = (convert(item) for item in getattr(message, field.name))
            result[field.name] = [item for item in items if item is not _OMIT]
        elif explicit_presence and not message.HasField(field.name):
            continue
        else:
            value = convert(getattr(message, field.name))
            if value is not _OMIT:
                result[field.name] = value
    return result


_OMIT = object()


@lru_cache(maxsize=None)
def _fields(descriptor: Descriptor) -> tuple[tuple[FieldDescriptor, Any, bool], ...]:
    """Each field with its value converter and whether an unset value is left out."""
    fields = []
    for field in descriptor.fields:
        if field.message_type is not None:
            fields.append((field, _message_converter(field.message_type), True))
        elif field.enum_type is not None:
            fields.append((field, _enum_converter(field.enum_type), False))
        else:
            fields.append((field, _same, field.has_presence and not field.is_repeated))
    return tuple(fields)


def _same(value: Any) -> Any:
    return value


def _message_converter(descriptor: Descriptor) -> Any:
    if descriptor.full_name == timestamp_pb2.Timestamp.DESCRIPTOR.full_name:
        return rfc3339
    if descriptor.full_name == struct_pb2.Struct.DESCRIPTOR.full_name:
        return struct_to_dict
    return json_object


def _enum_converter(enum: EnumDescriptor) -> Any:
    """`CAMPAIGN_STATUS_IN_PROGRESS` → "in_progress"; `_UNSPECIFIED` is left out."""
    unspecified = enum.values_by_number[0].name
    prefix = unspecified.removesuffix("UNSPECIFIED")
    words = {value.number: value.name.removeprefix(prefix).lower() for value in enum.values if value.number}

    def convert(number: int) -> Any:
        return words.get(number, _OMIT)

    return convert
