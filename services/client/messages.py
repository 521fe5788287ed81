"""Plain Python values in, generated messages out: a dict (or keyword arguments) becomes a request
by the message's own descriptor, so the client needs no second copy of the protos' fields.

- A message field takes a dict or the message itself; a `Struct` (filters, `custom`) any
  JSON-like dict; a `Timestamp` a `datetime` (naive means UTC) or an RFC 3339 string.
- An enum takes its full name (`SENDER_MODE_EXCLUDE`), its short name in any case (`exclude`)
  or its number.
- `None` leaves a field unset; an unknown field name is a TypeError naming it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message

from herald.common.v1 import common_pb2

_M = TypeVar("_M", bound=Message)


def build(cls: type[_M], value: Mapping[str, Any] | _M | None = None, /, **fields: Any) -> _M:
    """`cls` from a message of that type, a dict, or keyword arguments (both: keywords win)."""
    if isinstance(value, cls) and not fields:
        return value
    message = cls()
    if isinstance(value, Message):
        message.CopyFrom(value)
    elif value is not None:
        _fill(message, value)
    _fill(message, fields)
    return message


def sort_params(sort: Iterable[str | Mapping[str, Any] | common_pb2.SortParam] | None
                ) -> list[common_pb2.SortParam]:
    """`["-created_at", "name"]` (a leading `-` descends), dicts or SortParams."""
    params = []
    for item in sort or ():
        if isinstance(item, str):
            descending = item.startswith("-")
            params.append(common_pb2.SortParam(field=item.removeprefix("-"), direction=-1 if descending else 1))
        else:
            params.append(build(common_pb2.SortParam, item))
    return params


def timestamp(value: datetime | str) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    if isinstance(value, str):
        stamp.FromJsonString(value)
    else:
        stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    return stamp


def _fill(message: Message, values: Mapping[str, Any]) -> None:
    descriptor = message.DESCRIPTOR
    for name, value in values.items():
        if value is None:
            continue
        field = descriptor.fields_by_name.get(name) or descriptor.fields_by_camelcase_name.get(name)
        if field is None:
            raise TypeError(f"{descriptor.name} has no field {name!r}")
        target = getattr(message, field.name)
        if _is_map(field):
            for key, item in dict(value).items():
                _set_map_entry(target, field, key, item)
        elif field.is_repeated:
            items = [value] if isinstance(value, (str, bytes, Mapping, Message)) else list(value)
            if field.message_type is not None:
                for item in items:
                    _fill_message(target.add(), item)
            else:
                target.extend(_scalar(field, item) for item in items)
        elif field.message_type is not None:
            _fill_message(target, value)
        else:
            setattr(message, field.name, _scalar(field, value))


def _fill_message(target: Message, value: Any) -> None:
    if isinstance(value, Message):
        target.CopyFrom(value)
    elif isinstance(target, struct_pb2.Struct):
        target.update(_jsonable(value))
    elif isinstance(target, struct_pb2.Value):
        target.MergeFrom(_value(value))
    elif isinstance(target, timestamp_pb2.Timestamp):
        target.CopyFrom(timestamp(value))
    else:
        _fill(target, value)


# `field` is a FieldDescriptor: upb's or the pure-Python one, which the stubs type apart.
def _is_map(field: Any) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _set_map_entry(target: Any, field: Any, key: Any, item: Any) -> None:
    value_field = field.message_type.fields_by_name["value"]
    if value_field.message_type is not None:
        _fill_message(target[key], item)
    else:
        target[key] = _scalar(value_field, item)


def _scalar(field: Any, value: Any) -> Any:
    if field.enum_type is not None and isinstance(value, str):
        return _enum_number(field.enum_type, value)
    return value


def _enum_number(enum: EnumDescriptor, name: str) -> int:
    if name in enum.values_by_name:
        return enum.values_by_name[name].number
    prefix = enum.values[0].name.removesuffix("UNSPECIFIED")  # SENDER_MODE_UNSPECIFIED → SENDER_MODE_
    full = prefix + name.upper()
    if full in enum.values_by_name:
        return enum.values_by_name[full].number
    choices = ", ".join(v.name.removeprefix(prefix).lower() for v in enum.values if v.number)
    raise ValueError(f"{name!r} is not a {enum.name} (one of: {choices})")


def _jsonable(value: Any) -> Any:
    """Datetimes inside a Struct (a filter's `created_at`) as RFC 3339 strings."""
    if isinstance(value, datetime):
        return timestamp(value).ToJsonString()
    if isinstance(value, Mapping):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def _value(value: Any) -> struct_pb2.Value:
    holder = struct_pb2.Struct()
    holder.update({"v": _jsonable(value)})
    return holder.fields["v"]
