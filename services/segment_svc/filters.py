"""What users, channels, segments and targets filter on (DESIGN §6), as kit filter specs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.sql import ColumnElement

from herald.segment.v1 import segment_pb2
from services.kit.filters import Field, FilterSpec, Kind, compile_filter, enum_aliases, in_list
from services.segment_svc.store import channel_members, channels, segment_targets, segments, users

USERS = FilterSpec(
    fields={
        "id": Field(users.c.id),
        "name": Field(users.c.name),
        "role": Field(users.c.role),
        "teams": Field(users.c.teams, Kind.ARRAY_OF_STRINGS),
        "created_at": Field(users.c.created_at, Kind.DATETIME),
        "updated_at": Field(users.c.updated_at, Kind.DATETIME),
    },
    custom_column=users.c.custom,
)


def _has_member(op: str, value: Any) -> ColumnElement[bool]:
    """`members: "u"` / `{"$contains": "u"}` / `{"$in": [...]}`: has (any of) those members."""
    query = select(channel_members.c.user_id).where(channel_members.c.cid == channels.c.cid)
    if op == "$in":
        return exists(query.where(in_list(channel_members.c.user_id, value)))
    if op in ("$eq", "$contains"):
        return exists(query.where(channel_members.c.user_id == value))
    return exists(query)  # ("$exists", True): has any member


CHANNELS = FilterSpec(
    fields={
        "cid": Field(channels.c.cid),
        "type": Field(channels.c.type),
        "id": Field(channels.c.id),
        "team": Field(channels.c.team),
        "created_by_id": Field(channels.c.created_by_id),
        # A channel's members read as a list of user ids.
        "members": Field(compile=_has_member, kind=Kind.ARRAY_OF_STRINGS),
        "created_at": Field(channels.c.created_at, Kind.DATETIME),
        "updated_at": Field(channels.c.updated_at, Kind.DATETIME),
    },
    custom_column=channels.c.custom,
)

_ORDERED_OPS = frozenset({"$eq", "$exists", "$gt", "$gte", "$in", "$lt", "$lte", "$ne", "$nin"})

SEGMENTS = FilterSpec(fields={
    "id": Field(segments.c.id, operators=_ORDERED_OPS),
    "name": Field(segments.c.name, operators=_ORDERED_OPS),
    "type": Field(segments.c.type, Kind.ENUM, values=enum_aliases(segment_pb2.SegmentType, stored_as="word")),
    "all_users": Field(segments.c.all_users, Kind.BOOL),
    "created_at": Field(segments.c.created_at, Kind.DATETIME),
    "updated_at": Field(segments.c.updated_at, Kind.DATETIME),
})

TARGETS = FilterSpec(fields={
    "target_id": Field(segment_targets.c.target_id,
                       operators=frozenset({"$eq", "$gt", "$gte", "$lt", "$lte", "$in"})),
})

# A segment's filter is over users or channels, by the segment's type.
BY_SEGMENT_TYPE = {"user": USERS, "channel": CHANNELS}


def audience_condition(segment_type: str, filter_dict: dict | None, field: str = "filter") -> ColumnElement[bool]:
    """The condition of a user or channel segment's filter (InvalidArgument naming `field`)."""
    return compile_filter(BY_SEGMENT_TYPE[segment_type], filter_dict, field)
