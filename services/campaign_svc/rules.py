"""The rules a campaign's writable fields obey (DESIGN §4–5), checked at create and update.

Local checks run first and report every bad field at once; only a request that passes them
asks the segment service whether the sender and segments exist and what type the segments are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from herald.common.v1 import common_pb2
from herald.segment.v1 import segment_pb2
from services.campaign_svc.convert import template_to_json
from services.campaign_svc.upstream import Upstream
from services.kit import fields as field_rules
from services.kit.fields import check_id
from services.kit.errors import InvalidArgument, Violations
from services.kit.limits import MAX_ATTACHMENTS, MAX_AUDIENCE_USERS, MAX_MEMBERS, MAX_SEGMENTS_PER_AUDIENCE, MAX_TEAM
from services.kit.templates import USER_TARGET_VARIABLES, Tree, compile_text, is_template, uses_variable

SEGMENT_TYPE_WORDS = {segment_pb2.SEGMENT_TYPE_USER: "user", segment_pb2.SEGMENT_TYPE_CHANNEL: "channel"}


@dataclass
class CampaignFields:
    """A campaign's writable fields, checked and normalised, ready for the store."""

    id: str
    name: str
    description: str
    sender_id: str
    segment_ids: list[str]
    user_ids: list[str]
    sender_mode: int
    sender_visibility: int
    message_template: dict
    channel_template: dict | None
    create_channels: bool
    show_channels: bool
    skip_push: bool
    skip_webhook: bool
    segment_type: str | None = None

    def values(self) -> dict:
        return dict(self.__dict__)


def check_locally(request: Any, *, id_required: bool) -> CampaignFields:
    """Checks a Create/UpdateCampaignRequest without asking anyone; raises InvalidArgument."""
    v = Violations()
    check_id(v, request.id, "id", required=id_required)
    check_id(v, request.sender_id, "sender_id")
    field_rules.check_text(v, request.name, "name")
    field_rules.check_text(v, request.description, "description")
    segment_ids = _check_ids(v, request.segment_ids, "segment_ids", MAX_SEGMENTS_PER_AUDIENCE)
    user_ids = _check_ids(v, request.user_ids, "user_ids", MAX_AUDIENCE_USERS)
    if not request.segment_ids and not request.user_ids:
        v.add("segment_ids", "give segment_ids or user_ids (exactly one of them)")
    elif request.segment_ids and request.user_ids:
        v.add("user_ids", "give segment_ids or user_ids, not both")
    _check_enum(v, common_pb2.SenderMode, request.sender_mode, "sender_mode")
    _check_enum(v, common_pb2.SenderVisibility, request.sender_visibility, "sender_visibility")
    _check_message_template(v, request)
    _check_channel_template(v, request)
    for field, source in _template_sources(request):
        _compile(v, field, source)
    v.raise_if_any()
    return CampaignFields(
        id=request.id, name=request.name, description=request.description, sender_id=request.sender_id,
        segment_ids=segment_ids, user_ids=user_ids, sender_mode=request.sender_mode,
        sender_visibility=request.sender_visibility,
        message_template=template_to_json(request.message_template),
        channel_template=template_to_json(request.channel_template) if request.HasField("channel_template") else None,
        create_channels=request.create_channels, show_channels=request.show_channels,
        skip_push=request.skip_push, skip_webhook=request.skip_webhook)


async def check_remotely(fields: CampaignFields, request: Any, upstream: Upstream) -> None:
    """Asks the segment service about the sender and segments; sets `fields.segment_type`."""
    v = Violations()
    users = await upstream.get_users([fields.sender_id])
    v.check(fields.sender_id in users, "sender_id", f"user {fields.sender_id!r} does not exist")
    if fields.segment_ids:
        segments = await upstream.get_segments(fields.segment_ids)
        positions = {segment_id: i for i, segment_id in reversed(list(enumerate(request.segment_ids)))}
        for segment_id in fields.segment_ids:
            v.check(segment_id in segments, f"segment_ids[{positions[segment_id]}]",
                    f"segment {segment_id!r} does not exist")
        types = {segments[s].type for s in fields.segment_ids if s in segments}
        if len(types) > 1:
            v.add("segment_ids", "segments must all be of one type (all user segments or all channel segments)")
        elif types:
            fields.segment_type = SEGMENT_TYPE_WORDS.get(types.pop())
        if fields.segment_type == "channel":
            for field, source in _template_sources(request):
                v.check(not uses_variable(source, "receiver"), field,
                        "receiver is not available with channel segments (use sender and channel)")
    v.raise_if_any()


def _check_ids(v: Violations, ids, field: str, limit: int) -> list[str]:
    if len(ids) > limit:
        v.add(field, f"at most {limit} ids, got {len(ids)}")
        return []
    for i, value in enumerate(ids):
        check_id(v, value, f"{field}[{i}]")
    # Duplicates are harmless (the audience is deduplicated anyway): keep the first of each.
    return list(dict.fromkeys(ids))


def _check_enum(v: Violations, enum_type, value: int, field: str) -> None:
    if value not in enum_type.values():
        v.add(field, f"unknown value {value}; use one of {', '.join(enum_type.keys())}")


def _check_message_template(v: Violations, request) -> None:
    if not request.HasField("message_template"):
        v.add("message_template", "is required")
        return
    template = request.message_template
    if not template.text:
        v.add("message_template.text", "is required")
    field_rules.check_text(v, template.text, "message_template.text")
    check_id(v, template.poll_id, "message_template.poll_id", required=False)
    if len(template.attachments) > MAX_ATTACHMENTS:
        v.add("message_template.attachments", f"at most {MAX_ATTACHMENTS} attachments, got {len(template.attachments)}")


def _check_channel_template(v: Violations, request) -> None:
    if not request.HasField("channel_template"):
        v.check(not request.create_channels, "channel_template", "is required when create_channels is true")
        return
    template = request.channel_template
    field_rules.check_channel_type(v, template.type, "channel_template.type")
    field_rules.check_text(v, template.team, "channel_template.team", MAX_TEAM)
    _check_fixed_id(v, template.id, "channel_template.id", required=False)
    for name in ("members", "members_template"):
        if len(getattr(template, name)) > MAX_MEMBERS:
            v.add(f"channel_template.{name}", f"at most {MAX_MEMBERS} members, got {len(getattr(template, name))}")
    if template.members and template.members_template:
        v.add("channel_template.members_template", "give members or members_template, not both")
    for i, member in enumerate(template.members):
        _check_fixed_id(v, member, f"channel_template.members[{i}]")
    for i, member in enumerate(template.members_template):
        _check_fixed_id(v, member.user_id, f"channel_template.members_template[{i}].user_id")


def _check_fixed_id(v: Violations, value: str, field: str, *, required: bool = True) -> None:
    """An id that may be a template: a plain one must be a valid id now; a template's output
    is checked per recipient when sending (a bad one fails that recipient, not the campaign)."""
    if is_template(value):
        field_rules.check_text(v, value, field)
    else:
        check_id(v, value, field, required=required)


def _template_sources(request):
    """Every template string of a request, with the field path that names it."""
    message = request.message_template
    yield "message_template.text", message.text
    if message.HasField("custom"):
        yield "message_template.custom", json_format.MessageToDict(message.custom)
    for i, attachment in enumerate(message.attachments):
        yield f"message_template.attachments[{i}]", json_format.MessageToDict(attachment)
    if request.HasField("channel_template"):
        channel = request.channel_template
        yield "channel_template.id", channel.id
        if channel.HasField("custom"):
            yield "channel_template.custom", json_format.MessageToDict(channel.custom)
        for i, member in enumerate(channel.members):
            yield f"channel_template.members[{i}]", member
        for i, member in enumerate(channel.members_template):
            yield f"channel_template.members_template[{i}].user_id", member.user_id


def _compile(v: Violations, field: str, source) -> None:
    """Compiles with every variable a campaign may offer; `receiver` is checked once the
    segment type is known (check_remotely)."""
    try:
        if isinstance(source, str):
            compile_text(source, field, USER_TARGET_VARIABLES)
        else:
            Tree(source, field, USER_TARGET_VARIABLES)
    except InvalidArgument as exc:
        v.items.extend(exc.violations)
