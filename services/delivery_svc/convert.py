"""Rows ↔ protos of the delivery service, in one place."""

from __future__ import annotations

import datetime as dt
import json
import math
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2, delivery_service_pb2
from herald.segment.v1 import directory_service_pb2
from services.delivery_svc import store
from services.delivery_svc.outcomes import Outcome
from services.delivery_svc.usage import MonthlyUsage
from services.kit.db import utcnow
from services.kit.limits import MAX_PREVIEW_DETAIL
from services.kit.protos import struct_from, timestamp

# The recipient log's status → a preview's (the same cases, in the campaign's package).
PREVIEW_STATUS: dict[int, campaign_pb2.PreviewStatus] = {
    delivery_pb2.RECIPIENT_STATUS_SENT: campaign_pb2.PREVIEW_STATUS_SENT,
    delivery_pb2.RECIPIENT_STATUS_SKIPPED: campaign_pb2.PREVIEW_STATUS_SKIPPED,
    delivery_pb2.RECIPIENT_STATUS_FAILED: campaign_pb2.PREVIEW_STATUS_FAILED}


def delivery(row: Row[Any], users_read: int = 0, rate: float | None = None) -> delivery_pb2.Delivery:
    handled = row.sent + row.skipped + row.failed
    total = row.recipients_total or 0
    progress = progress_of(row.status, handled, total)
    stats = campaign_pb2.CampaignStats(
        progress=progress, stats_started_at=timestamp(row.started_at),
        stats_completed_at=timestamp(row.completed_at), stats_messages_sent=row.messages_sent,
        stats_channels_created=row.channels_created, stats_users_sent=row.users_sent,
        stats_users_read=users_read, recipients_total=total, recipients_skipped=row.skipped,
        recipients_failed=row.failed)
    if rate is None:
        end = row.completed_at or row.updated_at
        elapsed = (end - row.started_at).total_seconds() if row.started_at and end else 0.0
        rate = handled / elapsed if elapsed > 0 else 0.0
    if row.status == store.IN_PROGRESS:  # not sending (paused, ended): no rate, no eta
        stats.send_rate = row.rate  # measured by the writes of every replica sending it
        if row.rate > 0 and total > handled:
            stats.eta.CopyFrom(timestamp(utcnow() + dt.timedelta(seconds=(total - handled) / row.rate)))
    return delivery_pb2.Delivery(
        campaign_id=row.campaign_id, status=row.status, stop_reason=row.stop_reason,
        stop_message=row.stop_message, stats=stats, recipients_per_second=rate, resumes=row.generation,
        created_at=timestamp(row.created_at), updated_at=timestamp(row.updated_at))


# The largest float below 1: progress is 1 exactly when completed (DESIGN §4), never before.
ALMOST_DONE = math.nextafter(1.0, 0.0)


def progress_of(status: int, handled: int, total: int) -> float:
    """1 when completed; otherwise handled/total, kept below 1 (recipients added ahead of the
    cursor can make `handled` pass the count taken at start)."""
    if status == store.COMPLETED:
        return 1.0
    return min(ALMOST_DONE, handled / total) if total > 0 else 0.0


def recipient_outcome(row: Row[Any]) -> delivery_pb2.RecipientOutcome:
    return delivery_pb2.RecipientOutcome(
        campaign_id=row.campaign_id, target_id=row.target_id, status=row.status, reason=row.reason,
        cid=row.cid, message_id=row.message_id, created_at=timestamp(row.created_at))


def message(row: Row[Any] | SimpleNamespace, prefix: str = "") -> delivery_pb2.Message:
    """A `messages` row as a Message; `prefix`: its columns' prefix in a joined row (`m_`)."""
    def column(name: str) -> Any:
        return getattr(row, prefix + name)

    return delivery_pb2.Message(
        id=column("id"), cid=column("cid"), type=column("type"), text=column("text"), user_id=column("user_id"),
        attachments=[struct_from(a) for a in column("attachments") or []], custom=struct_from(column("custom")),
        poll_id=column("poll_id"), created_by_campaign_id=column("created_by_campaign_id"),
        created_at=timestamp(column("created_at")))


def preview_message(row: store.MessageRow) -> campaign_pb2.PreviewMessage:
    """A composed message that is not written, as PreviewCampaign shows it: what `message` makes
    of the row once stored (its JSON read back), without created_at."""
    stored = SimpleNamespace(**{**row._asdict(), "attachments": json.loads(row.attachments),
                                "custom": json.loads(row.custom), "created_at": None})
    return stored_preview_message(stored)


def stored_preview_message(row: Row[Any] | SimpleNamespace) -> campaign_pb2.PreviewMessage:
    """A `messages` row as a PreviewMessage (a test send's answer), without created_at.
    PreviewMessage has Message's fields and numbers, so the bytes carry over."""
    written = message(row)
    written.ClearField("created_at")
    return campaign_pb2.PreviewMessage.FromString(written.SerializeToString())


def recipient_preview(outcome: Outcome, ensured: directory_service_pb2.EnsuredChannel | None,
                      written: campaign_pb2.PreviewMessage | None = None) -> campaign_pb2.CampaignPreview:
    """A recipient as the sending code composed it (a preview, a test send): its outcome, its
    channel as EnsureChannels answered, and its message — as composed, or `written` (a test send's,
    read back)."""
    preview = campaign_pb2.CampaignPreview(
        target_id=outcome.target_id, status=PREVIEW_STATUS[outcome.status], reason=outcome.reason, cid=outcome.cid,
        detail=outcome.detail[:MAX_PREVIEW_DETAIL] if outcome.detail != outcome.reason else "")
    if ensured is not None and ensured.cid:
        preview.channel_exists = ensured.existed
        preview.channel.CopyFrom(ensured.channel)
        preview.member_ids.extend(ensured.member_ids)
    if written is not None:
        preview.message.CopyFrom(written)
    elif outcome.message is not None:
        preview.message.CopyFrom(preview_message(outcome.message))
    return preview


def event(row: Row[Any]) -> delivery_pb2.Event:
    """An outbox row as an Event; `sequence` is its position (0 until the sequencer gave it one).
    message.new's message comes from the row's `m_*` columns when it was read with them
    (store.events_after)."""
    result = delivery_pb2.Event.FromString(row.payload)
    result.sequence = row.position or 0
    result.id = row.id
    result.type = row.type
    result.cid = row.cid
    result.created_at.CopyFrom(timestamp(row.created_at))
    del result.user_ids[:]
    result.user_ids.extend(row.user_ids or [])
    if row.type == "channel.created" and not result.members:
        result.members.extend(result.channel.members)
    if getattr(row, "m_id", None) is not None:
        result.message.CopyFrom(message(row, "m_"))
    return result


def dead_letter(row: Row[Any]) -> delivery_pb2.DeadLetter:
    return delivery_pb2.DeadLetter(
        id=row.id, webhook_id=row.webhook_id, event=delivery_pb2.Event.FromString(row.event), url=row.url,
        attempts=row.attempts, last_error=row.last_error, created_at=timestamp(row.created_at),
        destination=row.destination, device_id=row.device_id, last_http_status=row.last_http_status,
        first_attempt_at=timestamp(row.first_attempt_at), last_attempt_at=timestamp(row.last_attempt_at))


def usage(month: MonthlyUsage) -> delivery_service_pb2.GetUsageResponse:
    return delivery_service_pb2.GetUsageResponse(month=month.month, messages_sent=month.messages_sent,
                                                 capacity=month.capacity, remaining=month.remaining)
