"""Rows ↔ protos of the segment service, in one place.

`Struct` ↔ dict goes through small hand-written walkers: `json_format.MessageToDict` costs
about 1.5× as much per user, and these conversions sit on the import path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from herald.segment.v1 import directory_pb2, directory_service_pb2, segment_pb2

SEGMENT_TYPE_WORDS = {segment_pb2.SEGMENT_TYPE_USER: "user", segment_pb2.SEGMENT_TYPE_CHANNEL: "channel"}
SEGMENT_TYPES = {word: value for value, word in SEGMENT_TYPE_WORDS.items()}


# ---------------------------------------------------------------------------------------------
# Struct and Timestamp

def _value_to_py(value: struct_pb2.Value) -> Any:
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
        return [_value_to_py(item) for item in value.list_value.values]
    return None


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    fields = struct.fields  # keys then lookups: cheaper than .items() on a upb map
    return {key: _value_to_py(fields[key]) for key in fields}


def fill_struct(target: struct_pb2.Struct, data: Mapping[str, Any] | None) -> None:
    if data:
        target.update(data)


def to_timestamp(target: timestamp_pb2.Timestamp, when: dt.datetime | None) -> None:
    if when is not None:
        target.FromDatetime(when)


# ---------------------------------------------------------------------------------------------
# Users

def user_row(user: directory_pb2.User, now: dt.datetime) -> dict[str, Any]:
    """The row of a user to store; `doc` is the user without its (server-set) timestamps."""
    if user.HasField("created_at") or user.HasField("updated_at"):
        user = directory_pb2.User(id=user.id, name=user.name, role=user.role, teams=user.teams,
                                  custom=user.custom)
    return {"id": user.id, "name": user.name, "role": user.role, "teams": user.teams[:],
            "custom": struct_to_dict(user.custom), "doc": user.SerializeToString(),
            "created_at": now, "updated_at": now}


def user_from_row(doc: bytes, created_at: dt.datetime | None = None,
                  updated_at: dt.datetime | None = None) -> directory_pb2.User:
    user = directory_pb2.User.FromString(doc)
    to_timestamp(user.created_at, created_at)
    to_timestamp(user.updated_at, updated_at)
    return user


# ---------------------------------------------------------------------------------------------
# Channels

def channel_row(channel: directory_pb2.Channel, now: dt.datetime) -> dict[str, Any]:
    return {"cid": f"{channel.type}:{channel.id}", "type": channel.type, "id": channel.id,
            "team": channel.team, "custom": struct_to_dict(channel.custom),
            "created_by_id": channel.created_by_id, "created_at": now, "updated_at": now}


def member_row(cid: str, member: directory_pb2.ChannelMember, now: dt.datetime) -> dict[str, Any]:
    archived_at = member.archived_at.ToDatetime(dt.timezone.utc) if member.HasField("archived_at") else None
    return {"cid": cid, "user_id": member.user_id, "channel_role": member.channel_role or "channel_member",
            "hidden": member.hidden, "archived_at": archived_at, "custom": struct_to_dict(member.custom),
            "created_at": now}


def channel_message(row: Mapping[str, Any], members: Iterable[Mapping[str, Any]],
                    *, full: bool = True) -> directory_pb2.Channel:
    """A channel with its members; `full=False` leaves out what recipients do not need."""
    channel = directory_pb2.Channel(cid=row["cid"], type=row["type"], id=row["id"], team=row["team"])
    fill_struct(channel.custom, row["custom"])
    for member in members:
        item = channel.members.add(user_id=member["user_id"], channel_role=member["channel_role"],
                                   hidden=member["hidden"])
        to_timestamp(item.archived_at, member["archived_at"])
        if full:
            fill_struct(item.custom, member["custom"])
            to_timestamp(item.created_at, member["created_at"])
    if full:
        channel.created_by_id = row["created_by_id"]
        to_timestamp(channel.created_at, row["created_at"])
        to_timestamp(channel.updated_at, row["updated_at"])
    return channel


def ensured_message(recipient_id: str, cid: str, created: bool, skip_reason: str,
                    row: Mapping[str, Any] | None,
                    members: Mapping[str, Mapping[str, Any]] | None) -> directory_service_pb2.EnsuredChannel:
    """One EnsureChannels outcome; `members` by user id (listed sorted by user id)."""
    item = directory_service_pb2.EnsuredChannel(recipient_id=recipient_id, cid=cid, created=created,
                                                skip_reason=skip_reason)
    if row is not None:
        ordered = [members[user_id] for user_id in sorted(members or {})]
        item.member_ids.extend(m["user_id"] for m in ordered)
        item.channel.CopyFrom(channel_message(row, ordered))
    return item


# ---------------------------------------------------------------------------------------------
# Segments

def segment_message(row: Mapping[str, Any]) -> segment_pb2.Segment:
    segment = segment_pb2.Segment(
        id=row["id"], type=SEGMENT_TYPES[row["type"]], name=row["name"], description=row["description"],
        all_users=row["all_users"], all_sender_channels=row["all_sender_channels"], size=row["size"])
    if row["filter"] is not None:
        fill_struct(segment.filter, row["filter"])
    to_timestamp(segment.created_at, row["created_at"])
    to_timestamp(segment.updated_at, row["updated_at"])
    return segment


def target_message(segment_id: str, row: Mapping[str, Any]) -> segment_pb2.SegmentTarget:
    target = segment_pb2.SegmentTarget(segment_id=segment_id, target_id=row["target_id"])
    to_timestamp(target.created_at, row["created_at"])
    return target
