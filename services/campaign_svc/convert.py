"""Rows ↔ protos for the campaign service, in one place."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import json_format
from google.protobuf.message import Message

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2
from herald.common.v1 import common_pb2
from herald.delivery.v1 import delivery_service_pb2
from services.campaign_svc.store import STATS_COLUMNS, STATS_TIMES, Status
from services.kit.protos import from_timestamp, timestamp

STATUS_TO_ENUM = {
    Status.DRAFT: campaign_pb2.CAMPAIGN_STATUS_DRAFT,
    Status.SCHEDULED: campaign_pb2.CAMPAIGN_STATUS_SCHEDULED,
    Status.IN_PROGRESS: campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS,
    Status.COMPLETED: campaign_pb2.CAMPAIGN_STATUS_COMPLETED,
    Status.STOPPED: campaign_pb2.CAMPAIGN_STATUS_STOPPED,
    Status.PAUSED: campaign_pb2.CAMPAIGN_STATUS_PAUSED,
}


def template_to_json(message: Message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def message_template(doc: Mapping | None) -> common_pb2.MessageTemplate:
    return json_format.ParseDict(dict(doc or {}), common_pb2.MessageTemplate())


def channel_template(doc: Mapping | None) -> common_pb2.ChannelTemplate | None:
    if doc is None:
        return None
    return json_format.ParseDict(dict(doc), common_pb2.ChannelTemplate())


def has_channel_audience(row: Mapping) -> bool:
    """Whether the campaign's recipients are channels (channel segments), not users (user_ids,
    user segments)."""
    return not row["user_ids"] and row["segment_type"] == "channel"


def campaign(row: Mapping) -> campaign_pb2.Campaign:
    """The stored campaign as a proto, without the looked-up users, segments and sender."""
    message = campaign_pb2.Campaign(
        id=row["id"], name=row["name"], description=row["description"], sender_id=row["sender_id"],
        segment_ids=list(row["segment_ids"] or []), user_ids=list(row["user_ids"] or []),
        sender_mode=row["sender_mode"], sender_visibility=row["sender_visibility"],
        message_template=message_template(row["message_template"]),
        create_channels=row["create_channels"], show_channels=row["show_channels"],
        skip_push=row["skip_push"], skip_webhook=row["skip_webhook"], max_send_rate=row["max_send_rate"],
        status=STATUS_TO_ENUM[row["status"]], stop_reason=row["stop_reason"],
        stop_message=row["stop_message"] or "", stats=stats(row),
    )
    template = channel_template(row["channel_template"])
    if template is not None:
        message.channel_template.CopyFrom(template)
    for name in ("scheduled_for", "stop_at", "created_at", "updated_at"):
        if row[name] is not None:
            getattr(message, name).CopyFrom(timestamp(row[name]))
    return message


def stats(row: Mapping) -> campaign_pb2.CampaignStats:
    message = campaign_pb2.CampaignStats(
        progress=row["progress"], stats_messages_sent=row["stats_messages_sent"],
        stats_channels_created=row["stats_channels_created"], stats_users_sent=row["stats_users_sent"],
        stats_users_read=row["stats_users_read"], recipients_total=row["recipients_total"],
        recipients_skipped=row["recipients_skipped"], recipients_failed=row["recipients_failed"],
        send_rate=row["send_rate"])
    for name in STATS_TIMES:
        if row[name] is not None:
            getattr(message, name).CopyFrom(timestamp(row[name]))
    return message


def stats_values(message: campaign_pb2.CampaignStats, *, completed: bool = False) -> dict:
    """A delivery's stats as column values of the campaign row. A recipients_total of 0 before
    the delivery completed means "not counted" (a delivery started by an older campaign service
    counts late): it is left out, so the count taken when the campaign started stands."""
    values = {name: getattr(message, name) for name in STATS_COLUMNS if name not in STATS_TIMES}
    if not values["recipients_total"] and not completed:
        del values["recipients_total"]
    values["progress"] = min(max(float(message.progress), 0.0), 1.0)
    for name in STATS_TIMES:
        values[name] = from_timestamp(getattr(message, name)) if message.HasField(name) else None
    return values


def usage(counted: delivery_service_pb2.GetUsageResponse) -> campaign_service_pb2.GetUsageResponse:
    """The delivery service's count as CampaignService answers it (`remaining` unset when unlimited)."""
    return campaign_service_pb2.GetUsageResponse(
        month=counted.month, messages_sent=counted.messages_sent, capacity=counted.capacity,
        remaining=counted.remaining if counted.HasField("remaining") else None)
