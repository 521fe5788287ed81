"""Tables of the campaign service and the SQL that reads and writes them.

- `campaigns`: one row per campaign: writable fields, templates as JSON, status, schedule,
  the stats last reported by the delivery service.
- `campaign_segments` / `campaign_users`: the audience, for the `segments` filter and for paging
  a campaign's users by keyset.
- `campaign_events`: an outbox of `campaign.*` events, written in the same transaction as the
  status change that causes them and handed to the delivery service by a background loop.

Status changes are conditional UPDATEs (`WHERE status = :expected`), so two instances sharing a
database never both make the same transition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (Boolean, Column, Float, ForeignKey, Index, Integer, LargeBinary, String, Table, Text,
                        delete, exists, insert, select, update)
from sqlalchemy.engine import Row, RowMapping
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement, Select

from services.kit.db import IdString, JsonDoc, UtcDateTime, new_metadata, rows_changed, utcnow
from services.kit.filters import in_list

metadata = new_metadata()


class Status:
    """Campaign statuses as stored: the reference's lowercase words."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    STOPPED = "stopped"
    PAUSED = "paused"
    TERMINAL = (COMPLETED, STOPPED)
    SENDING = (IN_PROGRESS, PAUSED)  # started and not ended: a delivery exists


campaigns = Table(
    "campaigns", metadata,
    Column("id", IdString(), primary_key=True),
    # Random per created campaign: keeps event ids unique when an id is deleted and reused.
    Column("instance", String(36), nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("sender_id", IdString(), nullable=False),
    Column("segment_ids", JsonDoc, nullable=False),
    Column("segment_type", String(16), nullable=True),  # "user" | "channel"; NULL for user_ids
    Column("user_ids", JsonDoc, nullable=False),
    Column("sender_mode", Integer, nullable=False, default=0),
    Column("sender_visibility", Integer, nullable=False, default=0),
    Column("message_template", JsonDoc, nullable=False),
    Column("channel_template", JsonDoc, nullable=True),
    Column("create_channels", Boolean, nullable=False, default=False),
    Column("show_channels", Boolean, nullable=False, default=False),
    Column("skip_push", Boolean, nullable=False, default=False),
    Column("skip_webhook", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False),
    Column("stop_reason", Integer, nullable=False, default=0),
    Column("stop_message", Text, nullable=False, default=""),
    Column("scheduled_for", UtcDateTime, nullable=True),
    Column("stop_at", UtcDateTime, nullable=True),
    # Who moved it to in_progress and when; the delivery is started by that instance, or by any
    # other one once the claim is older than a lease (the claimer died before starting it).
    Column("start_owner", String(64), nullable=True),
    Column("start_claimed_at", UtcDateTime, nullable=True),
    Column("delivery_started", Boolean, nullable=False, default=False),
    Column("progress", Float, nullable=False, default=0.0),
    Column("stats_started_at", UtcDateTime, nullable=True),
    Column("stats_completed_at", UtcDateTime, nullable=True),
    Column("stats_messages_sent", Integer, nullable=False, default=0),
    Column("stats_channels_created", Integer, nullable=False, default=0),
    Column("stats_users_sent", Integer, nullable=False, default=0),
    Column("stats_users_read", Integer, nullable=False, default=0),
    Column("recipients_total", Integer, nullable=False, default=0),
    Column("recipients_skipped", Integer, nullable=False, default=0),
    Column("recipients_failed", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Added by revision 0002 (in its order: columns added later come last on every backend).
    Column("max_send_rate", Float, nullable=False, default=0.0, server_default="0"),
    # Pauses so far: each pause and its resume are events with ids of their own.
    Column("pauses", Integer, nullable=False, default=0, server_default="0"),
    # The send rate and eta its delivery last reported (0 and NULL when not sending).
    Column("send_rate", Float, nullable=False, default=0.0, server_default="0"),
    Column("eta", UtcDateTime, nullable=True),
    Index("ix_campaigns_status_scheduled_for", "status", "scheduled_for"),
    Index("ix_campaigns_status_stop_at", "status", "stop_at"),
    Index("ix_campaigns_created_at_id", "created_at", "id"),
    Index("ix_campaigns_updated_at_id", "updated_at", "id"),
    Index("ix_campaigns_sender_id", "sender_id"),
)

campaign_segments = Table(
    "campaign_segments", metadata,
    Column("campaign_id", IdString(), ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("segment_id", IdString(), primary_key=True),
    Index("ix_campaign_segments_segment_id", "segment_id"),
)

# Ids of deleted campaigns that were sent: deliveries are keyed by campaign id, so such an id
# is never given to a new campaign (it would find the old delivery).
retired_campaign_ids = Table(
    "retired_campaign_ids", metadata,
    Column("id", IdString(), primary_key=True),
    Column("retired_at", UtcDateTime, nullable=False),
)

campaign_users = Table(
    "campaign_users", metadata,
    Column("campaign_id", IdString(), ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", IdString(), primary_key=True),
)

campaign_events = Table(
    "campaign_events", metadata,
    Column("id", String(128), primary_key=True),  # the event id handed to PublishEvent
    Column("campaign_id", IdString(), nullable=False),
    Column("type", String(32), nullable=False),
    Column("payload", LargeBinary, nullable=False),  # serialized herald.campaign.v1.Campaign
    Column("created_at", UtcDateTime, nullable=False),
    Column("published_at", UtcDateTime, nullable=True),
    Index("ix_campaign_events_published_at", "published_at"),
)

STATS_COLUMNS = ("progress", "stats_started_at", "stats_completed_at", "stats_messages_sent",
                 "stats_channels_created", "stats_users_sent", "stats_users_read", "recipients_total",
                 "recipients_skipped", "recipients_failed", "send_rate", "eta")
STATS_TIMES = ("stats_started_at", "stats_completed_at", "eta")


# --- campaigns -------------------------------------------------------------------------------

async def campaign_exists(session: AsyncSession, campaign_id: str) -> bool:
    """Whether the id is taken: by a campaign, or by a deleted campaign that was sent."""
    taken = select(exists().where(campaigns.c.id == campaign_id)).scalar_subquery() | select(
        exists().where(retired_campaign_ids.c.id == campaign_id)).scalar_subquery()
    return bool((await session.execute(select(taken))).scalar())


async def get_campaign(session: AsyncSession, campaign_id: str) -> RowMapping | None:
    return (await session.execute(select(campaigns).where(campaigns.c.id == campaign_id))).mappings().first()


async def campaign_stamps(session: AsyncSession, campaign_ids: Sequence[str]) -> list[Row[Any]]:
    """The campaigns' ids, statuses and updated_at (every write sets it): whether they changed,
    read without the rest of their rows; the ids bound as one parameter however many."""
    return list(await session.execute(select(campaigns.c.id, campaigns.c.status, campaigns.c.updated_at)
                                      .where(in_list(campaigns.c.id, list(campaign_ids)))))


async def insert_campaign(session: AsyncSession, values: dict) -> None:
    await session.execute(insert(campaigns).values(**values))
    await _write_audience(session, values["id"], values["user_ids"], values["segment_ids"])


async def replace_campaign(session: AsyncSession, campaign_id: str, values: dict,
                           statuses: Iterable[str]) -> int:
    """Replaces the writable fields while the status is one of `statuses`; returns rows changed."""
    result = await session.execute(update(campaigns).where(
        campaigns.c.id == campaign_id, campaigns.c.status.in_(list(statuses))).values(**values))
    if rows_changed(result):
        await session.execute(delete(campaign_users).where(campaign_users.c.campaign_id == campaign_id))
        await session.execute(delete(campaign_segments).where(campaign_segments.c.campaign_id == campaign_id))
        await _write_audience(session, campaign_id, values["user_ids"], values["segment_ids"])
    return rows_changed(result)


async def _write_audience(session: AsyncSession, campaign_id: str, user_ids: list[str],
                          segment_ids: list[str]) -> None:
    if user_ids:
        await session.execute(insert(campaign_users),
                              [{"campaign_id": campaign_id, "user_id": u} for u in user_ids])
    if segment_ids:
        await session.execute(insert(campaign_segments),
                              [{"campaign_id": campaign_id, "segment_id": s} for s in segment_ids])


async def delete_campaign(session: AsyncSession, campaign_id: str, unless_status: Sequence[str]) -> int:
    # campaign_users / campaign_segments go by ON DELETE CASCADE; SQLite needs foreign keys on,
    # which kit.db sets, but delete explicitly so the rows never linger either way.
    # A completed or stopped campaign may have a delivery (a stopped one was perhaps only scheduled).
    sent = (await session.execute(select(campaigns.c.status.in_(Status.TERMINAL)).where(
        campaigns.c.id == campaign_id))).scalar()
    result = await session.execute(delete(campaigns).where(
        campaigns.c.id == campaign_id, campaigns.c.status.not_in(list(unless_status))))
    if rows_changed(result):
        if sent:
            await session.execute(insert(retired_campaign_ids).values(id=campaign_id, retired_at=utcnow()))
        await session.execute(delete(campaign_users).where(campaign_users.c.campaign_id == campaign_id))
        await session.execute(delete(campaign_segments).where(campaign_segments.c.campaign_id == campaign_id))
    return rows_changed(result)


async def transition(session: AsyncSession, campaign_id: str, expected: str | Sequence[str], values: dict,
                     *conditions: ColumnElement[bool]) -> bool:
    """Moves a campaign on only if its status is still `expected` (and `conditions` hold)."""
    statuses = [expected] if isinstance(expected, str) else list(expected)
    result = await session.execute(update(campaigns).where(
        campaigns.c.id == campaign_id, campaigns.c.status.in_(statuses), *conditions).values(**values))
    return rows_changed(result) == 1


async def update_fields(session: AsyncSession, campaign_id: str, values: dict,
                        *conditions: ColumnElement[bool]) -> bool:
    result = await session.execute(update(campaigns).where(campaigns.c.id == campaign_id, *conditions)
                                   .values(**values))
    return rows_changed(result) == 1


# --- users of a campaign ---------------------------------------------------------------------

def users_of(campaign_id: str) -> Select[Any]:
    """The user ids a campaign targets, as a statement for keyset paging."""
    return select(campaign_users.c.user_id).where(campaign_users.c.campaign_id == campaign_id)


# --- scheduler -------------------------------------------------------------------------------

async def due_scheduled(session: AsyncSession, now: dt.datetime, limit: int = 100) -> list[RowMapping]:
    """Scheduled campaigns whose start time has come, earliest first, with their audience."""
    return list((await session.execute(
        select(campaigns.c.id, campaigns.c.scheduled_for, campaigns.c.stop_at, campaigns.c.updated_at,
               campaigns.c.sender_id, campaigns.c.segment_ids, campaigns.c.user_ids)
        .where(campaigns.c.status == Status.SCHEDULED, campaigns.c.scheduled_for <= now)
        .order_by(campaigns.c.scheduled_for, campaigns.c.id).limit(limit))).mappings())


async def expired_running(session: AsyncSession, now: dt.datetime, limit: int = 100) -> list[str]:
    """In-progress and paused campaigns whose stop_at has passed."""
    return list((await session.execute(
        select(campaigns.c.id)
        .where(campaigns.c.status.in_(Status.SENDING), campaigns.c.stop_at <= now)
        .order_by(campaigns.c.stop_at, campaigns.c.id).limit(limit))).scalars())


async def in_progress_ids(session: AsyncSession) -> list[str]:
    return list((await session.execute(
        select(campaigns.c.id).where(campaigns.c.status == Status.IN_PROGRESS).order_by(campaigns.c.id))).scalars())


# --- event outbox ----------------------------------------------------------------------------

async def add_event(session: AsyncSession, event_id: str, campaign_id: str, type_: str, payload: bytes,
                    now: dt.datetime) -> bool:
    """Records a pending event once; a second call with the same id is a no-op."""
    if (await session.execute(select(exists().where(campaign_events.c.id == event_id)))).scalar():
        return False
    await session.execute(insert(campaign_events).values(
        id=event_id, campaign_id=campaign_id, type=type_, payload=payload, created_at=now))
    return True


async def pending_events(session: AsyncSession, limit: int = 100) -> list[RowMapping]:
    return list((await session.execute(
        select(campaign_events).where(campaign_events.c.published_at.is_(None))
        .order_by(campaign_events.c.created_at, campaign_events.c.id).limit(limit))).mappings())


async def mark_published(session: AsyncSession, event_id: str, now: dt.datetime) -> None:
    await session.execute(update(campaign_events).where(campaign_events.c.id == event_id)
                          .values(published_at=now))
