"""The rules a campaign's writable fields obey (DESIGN §4–5), checked at create and update.

Local checks run first and report every bad field at once; only a request that passes them
asks the segment service whether the sender and segments exist and what type the segments are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from herald.campaign.v1 import campaign_service_pb2
from herald.segment.v1 import segment_pb2
from services.campaign_svc import reasons
from services.campaign_svc.convert import template_to_json
from services.campaign_svc.upstream import Upstream
from services.kit import campaign_rules
from services.kit import reasons as kit_reasons
from services.kit.errors import InvalidArgument, Violations
from services.kit.fields import check_id, check_text
from services.kit.templates import USER_TARGET_VARIABLES, Tree

SEGMENT_TYPE_WORDS = {segment_pb2.SEGMENT_TYPE_USER: "user", segment_pb2.SEGMENT_TYPE_CHANNEL: "channel"}

CampaignWrite = campaign_service_pb2.CreateCampaignRequest | campaign_service_pb2.UpdateCampaignRequest


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
    max_send_rate: float = 0.0
    segment_type: str | None = None
    # The template fields that use `receiver` (known from compiling them; not stored).
    receiver_fields: list[str] = field(default_factory=list)

    def values(self) -> dict:
        return {name: value for name, value in self.__dict__.items() if name != "receiver_fields"}


def check_locally(request: CampaignWrite, *, id_required: bool) -> CampaignFields:
    """Checks a Create/UpdateCampaignRequest without asking anyone; raises InvalidArgument."""
    v = Violations()
    check_id(v, request.id, "id", required=id_required)
    check_id(v, request.sender_id, "sender_id")
    check_text(v, request.name, "name")
    check_text(v, request.description, "description")
    campaign_rules.check_audience(v, request.segment_ids, request.user_ids)
    campaign_rules.check_sender_options(v, request.sender_mode, request.sender_visibility)
    if request.HasField("message_template"):
        campaign_rules.check_message_template(v, request.message_template)
    else:
        v.add("message_template", "is required")
    channel_template = request.channel_template if request.HasField("channel_template") else None
    campaign_rules.check_channel_template(v, channel_template, request.create_channels)
    campaign_rules.check_max_send_rate(v, request.max_send_rate)
    trees = [(name, _compile(v, name, source)) for name, source in _template_sources(request)]
    receiver_fields = [name for name, tree in trees if tree is not None and "receiver" in tree.uses]
    v.raise_if_any()
    for part in ("message_template", "channel_template"):  # each rendered under its own budget
        campaign_rules.check_render_budget(v, [t for name, t in trees if t is not None and name.startswith(part)])
    v.raise_if_any()
    return CampaignFields(
        id=request.id, name=request.name, description=request.description, sender_id=request.sender_id,
        # Duplicates are harmless (the audience is deduplicated anyway): keep the first of each.
        segment_ids=list(dict.fromkeys(request.segment_ids)), user_ids=list(dict.fromkeys(request.user_ids)),
        sender_mode=request.sender_mode, sender_visibility=request.sender_visibility,
        message_template=template_to_json(request.message_template),
        channel_template=template_to_json(channel_template) if channel_template is not None else None,
        create_channels=request.create_channels, show_channels=request.show_channels,
        skip_push=request.skip_push, skip_webhook=request.skip_webhook, max_send_rate=request.max_send_rate,
        receiver_fields=receiver_fields)


async def check_remotely(fields: CampaignFields, request: CampaignWrite, upstream: Upstream) -> None:
    """Asks the segment service about the sender and segments; sets `fields.segment_type`."""
    v = Violations()
    users = await upstream.get_users([fields.sender_id])
    v.check(fields.sender_id in users, "sender_id", f"user {fields.sender_id!r} does not exist",
            reasons.SENDER_NOT_FOUND)
    if fields.segment_ids:
        segments = await upstream.get_segments(fields.segment_ids)
        positions = {segment_id: i for i, segment_id in reversed(list(enumerate(request.segment_ids)))}
        for segment_id in fields.segment_ids:
            v.check(segment_id in segments, f"segment_ids[{positions[segment_id]}]",
                    f"segment {segment_id!r} does not exist", reasons.SEGMENT_NOT_FOUND)
        types = {segments[s].type for s in fields.segment_ids if s in segments}
        if len(types) > 1:
            v.add("segment_ids", "segments must all be of one type (all user segments or all channel segments)",
                  reasons.SEGMENT_TYPE_MISMATCH)
        elif types:
            fields.segment_type = SEGMENT_TYPE_WORDS.get(types.pop())
        if fields.segment_type == "channel":
            for name in fields.receiver_fields:
                v.add(name, "receiver is not available with channel segments (use sender and channel)",
                      kit_reasons.TEMPLATE_INVALID)
    v.raise_if_any()


def _template_sources(request: Any) -> Iterator[tuple[str, Any]]:
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


def _compile(v: Violations, name: str, source: Any) -> Tree | None:
    """Compiles with every variable a campaign may offer (its `uses` say which ones it uses;
    `receiver` is checked once the segment type is known, check_remotely); None when it fails."""
    try:
        return Tree(source, name, USER_TARGET_VARIABLES)
    except InvalidArgument as exc:
        v.items.extend(exc.violations)
        return None
