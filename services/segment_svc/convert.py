"""Rows ↔ protos of the segment service, in one place."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any


from herald.segment.v1 import directory_pb2, directory_service_pb2, segment_pb2
from services.kit.protos import fill_struct, fill_timestamp, struct_to_dict

SEGMENT_TYPE_WORDS = {segment_pb2.SEGMENT_TYPE_USER: "user", segment_pb2.SEGMENT_TYPE_CHANNEL: "channel"}
SEGMENT_TYPES = {word: value for value, word in SEGMENT_TYPE_WORDS.items()}
DEVICE_PROVIDER_WORDS = {directory_pb2.DEVICE_PROVIDER_WEBPUSH: "webpush", directory_pb2.DEVICE_PROVIDER_HTTP: "http"}
DEVICE_PROVIDERS = {word: value for value, word in DEVICE_PROVIDER_WORDS.items()}


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
    fill_timestamp(user.created_at, created_at)
    fill_timestamp(user.updated_at, updated_at)
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


# Rows are Mapping[Any, Any]: a RowMapping's keys are column names or Column objects.
def channel_message(row: Mapping[Any, Any], members: Iterable[Mapping[Any, Any]], *, full: bool = True,
                    into: directory_pb2.Channel | None = None) -> directory_pb2.Channel:
    """A channel with its members; `full=False` leaves out what recipients do not need. Filled
    `into` a message of a response (an empty one), it is not copied there afterwards."""
    channel = directory_pb2.Channel() if into is None else into
    channel.cid, channel.type, channel.id, channel.team = row["cid"], row["type"], row["id"], row["team"]
    fill_struct(channel.custom, row["custom"])
    for member in members:
        item = channel.members.add(user_id=member["user_id"], channel_role=member["channel_role"],
                                   hidden=member["hidden"])
        fill_timestamp(item.archived_at, member["archived_at"])
        if full:
            fill_struct(item.custom, member["custom"])
            fill_timestamp(item.created_at, member["created_at"])
    if full:
        channel.created_by_id = row["created_by_id"]
        fill_timestamp(channel.created_at, row["created_at"])
        fill_timestamp(channel.updated_at, row["updated_at"])
    return channel


def ensured_message(recipient_id: str, cid: str, created: bool, skip_reason: str,
                    row: Mapping[str, Any] | None, members: Mapping[str, Mapping[str, Any]], *,
                    existed: bool = False) -> directory_service_pb2.EnsuredChannel:
    """One EnsureChannels outcome; `members` by user id (listed sorted by user id)."""
    item = directory_service_pb2.EnsuredChannel(recipient_id=recipient_id, cid=cid, created=created,
                                                skip_reason=skip_reason, existed=existed)
    if row is not None:
        ordered = sorted(members)
        item.member_ids.extend(ordered)
        channel_message(row, [members[user_id] for user_id in ordered], into=item.channel)
    return item


# ---------------------------------------------------------------------------------------------
# Devices

def device_message(row: Mapping[Any, Any]) -> directory_pb2.Device:
    device = directory_pb2.Device(id=row["id"], user_id=row["user_id"], provider=DEVICE_PROVIDERS[row["provider"]],
                                  endpoint=row["endpoint"])
    fill_struct(device.keys, row["keys"])
    fill_timestamp(device.created_at, row["created_at"])
    fill_timestamp(device.updated_at, row["updated_at"])
    return device


# ---------------------------------------------------------------------------------------------
# Segments

def segment_message(row: Mapping[Any, Any]) -> segment_pb2.Segment:
    segment = segment_pb2.Segment(
        id=row["id"], type=SEGMENT_TYPES[row["type"]], name=row["name"], description=row["description"],
        all_users=row["all_users"], all_sender_channels=row["all_sender_channels"], size=row["size"])
    if row["filter"] is not None:
        fill_struct(segment.filter, row["filter"])
    fill_timestamp(segment.created_at, row["created_at"])
    fill_timestamp(segment.updated_at, row["updated_at"])
    return segment


def target_message(segment_id: str, row: Mapping[Any, Any]) -> segment_pb2.SegmentTarget:
    target = segment_pb2.SegmentTarget(segment_id=segment_id, target_id=row["target_id"])
    fill_timestamp(target.created_at, row["created_at"])
    return target
