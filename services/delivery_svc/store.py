"""Tables and queries of the delivery service.

- `deliveries`: one row per campaign: the snapshot (Campaign proto bytes), status, the
  checkpoint (`cursor`: the segment service's StreamRecipients cursor covering every recipient
  already written) and the counters. Counters and cursor move in the same transaction as the
  writes they cover, so a crash replays at most one uncommitted batch.
- `delivery_partitions`: PostgreSQL replicas share a delivery by ranges of its target ids, each
  with its own checkpoint and lease (engine.py); SQLite's one replica uses `deliveries.cursor`.
- `messages`: one per sent recipient; the id derives from campaign id + target id. Test
  messages (SendTestDelivery) are messages too, with ids of their own (`test-` …).
- `recipient_log`: one outcome per (campaign, target): sent, skipped or failed with a reason.
- `reads` (campaign, reader) for stats_users_read: who marked a channel with the campaign's
  message read. No read times: a read is counted by campaign, whenever its message committed.
- `events`: the outbox. `payload` holds the `herald.delivery.v1.Event` proto bytes minus what
  columns hold (sequence; for message.new the message, which is the `messages` row
  `message_id`), so writing a batch's events costs one serialisation per channel. `sequence` is
  the insertion order; `position` is the order readers follow (`Event.sequence` as clients see
  it), set by the sequencer after the event committed on PostgreSQL (see sequencer.py for why
  they differ) and as it is written on SQLite (insert_events).
- `event_sequencer`: one row, the last position given out (positions never restart, even once
  every event is pruned).
- `event_users`: who each in-app event (channel.created, message.new) is for: one row per
  (user, position), written with the positions, forgotten once the event is pruned.
- `monthly_usage`: messages written per calendar month (UTC), for the monthly capacity.
- `test_sends`: the skip flags of each campaign's latest test send, for the dispatcher.

The engine's hot path writes rows as the named tuples below (`RecipientLogRow`, `MessageRow`,
`EventRow`): their fields are the columns, in the order the bulk insert takes them
(services.kit.bulk), so a column order is kept nowhere else.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import (BigInteger, Boolean, Column, ColumnElement, CursorResult, Executable, Float, Index, Integer,
                        LargeBinary, Row, Select, String, Table, Text, Update, and_, any_, bindparam, case, delete,
                        exists, func, insert, literal, or_, select, tuple_, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from herald.campaign.v1 import campaign_pb2
from services.kit import event_types
from services.kit.bulk import DriverValues, write_tuples
from services.kit.db import IdString, JsonDoc, UtcDateTime, dialect_insert, new_metadata, rows_changed
from services.kit.filters import in_list
from services.kit.limits import MAX_CID, MAX_ID, MAX_REASON_CHARS
from services.kit.months import month_of

metadata = new_metadata()

IN_PROGRESS = campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS
COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED
STOPPED = campaign_pb2.CAMPAIGN_STATUS_STOPPED
PAUSED = campaign_pb2.CAMPAIGN_STATUS_PAUSED
TERMINAL = frozenset({COMPLETED, STOPPED})
STOPPABLE = (IN_PROGRESS, PAUSED)

# Counter columns of a delivery, in the order batches add to them.
COUNTERS = ("sent", "skipped", "failed", "messages_sent", "channels_created", "users_sent")

deliveries = Table(
    "deliveries", metadata,
    Column("campaign_id", IdString(), primary_key=True),
    Column("snapshot", LargeBinary, nullable=False),
    Column("status", Integer, nullable=False),
    Column("stop_reason", Integer, nullable=False, default=0),
    Column("stop_message", Text, nullable=False, default=""),
    Column("cursor", Text, nullable=False, default=""),
    # Counted by campaign_svc before it started the campaign (the snapshot's stats), NULL until
    # the engine counts a snapshot without it; corrected to what was streamed at completion.
    Column("recipients_total", Integer, nullable=True),
    *(Column(name, Integer, nullable=False, default=0) for name in COUNTERS),
    Column("started_at", UtcDateTime, nullable=True),
    Column("completed_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # PostgreSQL replicas: the replica running the delivery, and until when (database time) it
    # holds it unless renewed; NULL on SQLite (one replica) and for deliveries from before.
    Column("owner", String(255), nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
    # With a maximum send rate: when (Unix time) the delivery may send again (pacing.py).
    Column("paced_until", Float, nullable=True),
    # Moved on by every resume: a run started before a pause writes nothing after it (its
    # snapshot, whose text may have changed meanwhile, is not the delivery's any more).
    Column("generation", Integer, nullable=False, default=0, server_default="0"),
    # Its send rate across replicas: recipients a second over the last RATE_WINDOW_S of batches,
    # measured from (`rate_from`: the pace clock's time, `rate_base`: recipients handled then).
    Column("rate", Float, nullable=False, default=0.0, server_default="0"),
    Column("rate_from", Float, nullable=True),
    Column("rate_base", Integer, nullable=False, default=0, server_default="0"),
)
Index("ix_deliveries_status", deliveries.c.status)


class Lease(NamedTuple):
    """A replica's hold on the deliveries it runs (PostgreSQL): `owner` names the replica,
    `seconds` is how long a hold lasts unless renewed (HERALD_LEASE_S)."""

    owner: str
    seconds: float

    def until(self) -> ColumnElement[Any]:
        """The end of a hold taken now, in database time (replicas' clocks may differ)."""
        return func.now() + dt.timedelta(seconds=self.seconds)

# PostgreSQL replicas share a delivery by ranges of target ids (after_id, last_id]; last_id ""
# runs to the end. Each has its own checkpoint (`cursor`) and lease; `done` once streamed to its
# end. SQLite's one replica sends a delivery as a whole, from `deliveries.cursor`.
partitions = Table(
    "delivery_partitions", metadata,
    Column("campaign_id", IdString(), primary_key=True),
    Column("part", Integer, primary_key=True),
    Column("after_id", IdString(MAX_CID), nullable=False),
    Column("last_id", IdString(MAX_CID), nullable=False),
    Column("cursor", IdString(MAX_CID), nullable=False),
    Column("done", Boolean, nullable=False),
    Column("owner", String(255), nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
)
Index("ix_delivery_partitions_open", partitions.c.campaign_id,
      postgresql_where=~partitions.c.done, sqlite_where=~partitions.c.done)

messages = Table(
    "messages", metadata,
    Column("id", IdString(64), primary_key=True),
    Column("cid", IdString(MAX_CID), nullable=False),
    Column("type", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("user_id", IdString(), nullable=False),
    Column("attachments", JsonDoc, nullable=False),
    Column("custom", JsonDoc, nullable=False),
    Column("poll_id", String(MAX_ID), nullable=False, default=""),
    Column("created_by_campaign_id", IdString(), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_messages_cid_id", messages.c.cid, messages.c.id)
Index("ix_messages_campaign_id", messages.c.created_by_campaign_id, messages.c.id)

recipient_log = Table(
    "recipient_log", metadata,
    Column("campaign_id", IdString(), primary_key=True),
    Column("target_id", IdString(MAX_CID), primary_key=True),
    Column("status", Integer, nullable=False),
    Column("reason", String(MAX_REASON_CHARS), nullable=False, default=""),
    Column("cid", IdString(MAX_CID), nullable=False, default=""),
    Column("message_id", IdString(64), nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
)

reads = Table(
    "reads", metadata,
    Column("campaign_id", IdString(), primary_key=True),
    Column("user_id", IdString(), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
)

events = Table(
    "events", metadata,
    # INTEGER PRIMARY KEY is SQLite's autoincrementing rowid; BIGSERIAL on PostgreSQL.
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    # Engine events: "<type>:<campaign id>:<cid>" or "<type>:<message id>"; campaign events: ≤ 255.
    Column("id", IdString(600), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("campaign_id", IdString(), nullable=False, default=""),
    Column("cid", IdString(MAX_CID), nullable=False, default=""),
    Column("message_id", IdString(64), nullable=False, default=""),
    Column("user_ids", JsonDoc, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # NULL until the sequencer positions the committed row; readers read by position only.
    Column("position", BigInteger, nullable=True),
)
Index("ix_events_position", events.c.position, unique=True)
# The sequencer's work list: only rows still without a position (a handful at any time).
Index("ix_events_unpositioned", events.c.sequence, postgresql_where=events.c.position.is_(None),
      sqlite_where=events.c.position.is_(None))

monthly_usage = Table(
    "monthly_usage", metadata,
    Column("month", String(7), primary_key=True),  # "2026-07"
    Column("messages", Integer, nullable=False),
)

# skip_push / skip_webhook of each campaign's latest test send: the dispatcher reads a campaign's
# from its delivery's snapshot, and a campaign tested before it started has no delivery yet.
test_sends = Table(
    "test_sends", metadata,
    Column("campaign_id", IdString(), primary_key=True),
    Column("skip_push", Boolean, nullable=False),
    Column("skip_webhook", Boolean, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The start of a test message's id (SendTestDelivery); a campaign's own messages have plain UUIDs.
TEST_MESSAGE_PREFIX = "test-"


def insert_ignoring_duplicates(session: AsyncSession, table: Table) -> sqlite.Insert | postgresql.Insert:
    """INSERT ... ON CONFLICT DO NOTHING for the session's backend."""
    return dialect_insert(session, table).on_conflict_do_nothing()


async def _changed(session: AsyncSession, stmt: Executable) -> int:
    """Runs an INSERT / UPDATE; the number of rows it changed."""
    result = cast(CursorResult[Any], await session.execute(stmt))
    return result.rowcount


# --- deliveries --------------------------------------------------------------------------------

async def insert_delivery(session: AsyncSession, campaign_id: str, snapshot: bytes, recipients_total: int | None,
                          now: dt.datetime, lease: Lease | None = None) -> bool:
    """Creates the delivery (recipients_total None: not counted yet), held by `lease`'s replica
    when given; False when the campaign already has one."""
    held: dict[str, Any] = {"owner": lease.owner, "lease_until": lease.until()} if lease is not None else {}
    stmt = insert_ignoring_duplicates(session, deliveries).values(
        campaign_id=campaign_id, snapshot=snapshot, status=IN_PROGRESS, stop_reason=0, stop_message="",
        cursor="", recipients_total=recipients_total, generation=0, **{name: 0 for name in COUNTERS},
        started_at=now, created_at=now, updated_at=now, **held)
    return await _changed(session, stmt) == 1


async def get_delivery(session: AsyncSession, campaign_id: str) -> Row[Any] | None:
    return (await session.execute(select(deliveries).where(deliveries.c.campaign_id == campaign_id))).first()


async def get_delivery_read(session: AsyncSession, campaign_id: str) -> tuple[Row[Any] | None, int]:
    """The delivery and how many users read its campaign, in one statement (a watched
    delivery is read up to four times a second)."""
    users_read = (select(func.count()).where(reads.c.campaign_id == campaign_id)).scalar_subquery()
    row = (await session.execute(select(deliveries, users_read.label("users_read"))
                                 .where(deliveries.c.campaign_id == campaign_id))).first()
    return row, (row.users_read if row is not None else 0)


async def get_deliveries(session: AsyncSession, campaign_ids: Sequence[str]) -> list[Row[Any]]:
    rows = await session.execute(select(deliveries).where(deliveries.c.campaign_id.in_(list(campaign_ids))))
    return list(rows)


async def in_progress_campaign_ids(session: AsyncSession) -> list[str]:
    rows = await session.execute(select(deliveries.c.campaign_id).where(deliveries.c.status == IN_PROGRESS))
    return [r.campaign_id for r in rows]


def _update_in_progress(campaign_id: str, generation: int | None = None) -> Update:
    """An UPDATE of the delivery that changes it only while it is in progress (and, given a
    generation, not paused and resumed since)."""
    stmt = update(deliveries).where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == IN_PROGRESS)
    return stmt if generation is None else stmt.where(deliveries.c.generation == generation)


async def claim_in_progress(session: AsyncSession, campaign_id: str, now: dt.datetime, generation: int) -> bool:
    """Touches an in-progress delivery of this generation, taking its row lock first in the
    transaction; False when it is not (stopped or paused meanwhile), so the caller writes nothing."""
    return await _changed(session, _update_in_progress(campaign_id, generation).values(updated_at=now)) == 1


async def pause_delivery(session: AsyncSession, campaign_id: str, now: dt.datetime) -> bool:
    """Pauses an in-progress delivery and frees its partitions, so that any replica takes them
    when it resumes; False when it was not in progress. The partitions' rows are locked before
    the delivery's, in the order a batch locks them (else the two would deadlock)."""
    await session.execute(update(partitions).where(partitions.c.campaign_id == campaign_id, ~partitions.c.done)
                          .values(lease_until=None))
    return await _changed(session, _update_in_progress(campaign_id).values(status=PAUSED, updated_at=now)) == 1


async def resume_delivery(session: AsyncSession, campaign_id: str, snapshot: bytes, now: dt.datetime) -> int | None:
    """Resumes a paused delivery with the campaign's snapshot as it is now; its new generation,
    None when it was not paused."""
    resumed = (update(deliveries).where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == PAUSED)
               .values(status=IN_PROGRESS, snapshot=snapshot, generation=deliveries.c.generation + 1, updated_at=now,
                       rate=0.0, rate_from=None)  # measured afresh: the pause is not sending time
               .returning(deliveries.c.generation))
    return (await session.execute(resumed)).scalar()


def _unheld(lease_until: Column[Any]) -> ColumnElement[bool]:
    return or_(lease_until.is_(None), lease_until < func.now())


async def claim_unheld(session: AsyncSession, lease: Lease, limit: int = 100) -> list[Row[Any]]:
    """Takes the in-progress deliveries not cut into partitions yet that no replica holds (hold
    expired: its replica died before cutting them), skipping rows another transaction holds;
    their campaign ids and snapshots."""
    unheld = (select(deliveries.c.campaign_id)
              .where(deliveries.c.status == IN_PROGRESS, _unheld(deliveries.c.lease_until),
                     ~exists().where(partitions.c.campaign_id == deliveries.c.campaign_id))
              .limit(limit).with_for_update(skip_locked=True))
    taken = (update(deliveries).where(deliveries.c.campaign_id.in_(unheld.scalar_subquery()))
             .values(owner=lease.owner, lease_until=lease.until())
             .returning(deliveries.c.campaign_id, deliveries.c.snapshot, deliveries.c.generation))
    return list(await session.execute(taken))


async def renew_leases(session: AsyncSession, lease: Lease, campaign_ids: Sequence[str]) -> set[str]:
    """Renews the lease's replica's holds on these deliveries (before they are cut) and on their
    partitions; the deliveries of which it holds neither (taken over meanwhile) are left out."""
    ids = list(campaign_ids)
    renewed = (update(deliveries)
               .where(deliveries.c.campaign_id.in_(ids), deliveries.c.owner == lease.owner,
                      ~exists().where(partitions.c.campaign_id == deliveries.c.campaign_id))
               .values(lease_until=lease.until()).returning(deliveries.c.campaign_id))
    parts = (update(partitions)
             .where(partitions.c.campaign_id.in_(ids), partitions.c.owner == lease.owner, ~partitions.c.done)
             .values(lease_until=lease.until()).returning(partitions.c.campaign_id))
    return {row.campaign_id for row in await session.execute(renewed)} | \
        {row.campaign_id for row in await session.execute(parts)}


async def release_leases(session: AsyncSession, lease: Lease) -> None:
    """Gives up the lease's replica's holds (a replica stopping): another takes them over at once."""
    await session.execute(update(deliveries).where(deliveries.c.owner == lease.owner, deliveries.c.status == IN_PROGRESS)
                          .values(lease_until=None))
    await session.execute(update(partitions).where(partitions.c.owner == lease.owner, ~partitions.c.done)
                          .values(lease_until=None))


# --- partitions (PostgreSQL replicas) ------------------------------------------------------------

class Partition(NamedTuple):
    """A range of a delivery's audience held by this replica: stream after `cursor` through
    `last_id` ("" = to the end)."""

    campaign_id: str
    part: int
    cursor: str
    last_id: str


async def lock_delivery(session: AsyncSession, campaign_id: str) -> Row[Any] | None:
    """The delivery's status, generation and checkpoint, its row locked until the transaction ends."""
    query = (select(deliveries.c.status, deliveries.c.generation, deliveries.c.cursor)
             .where(deliveries.c.campaign_id == campaign_id))
    return cast(Row[Any] | None, (await session.execute(query.with_for_update())).first())


async def has_partitions(session: AsyncSession, campaign_id: str) -> bool:
    return bool(await session.scalar(select(exists().where(partitions.c.campaign_id == campaign_id))))


async def insert_partitions(session: AsyncSession, campaign_id: str, cursor: str, boundaries: Sequence[str]) -> None:
    """Cuts the rest of the delivery (after `cursor`) at `boundaries`: one partition per range."""
    ends = [b for b in boundaries if b > cursor] + [""]
    starts = [cursor, *ends[:-1]]
    await session.execute(insert(partitions), [
        {"campaign_id": campaign_id, "part": i, "after_id": start, "last_id": end, "cursor": start, "done": False}
        for i, (start, end) in enumerate(zip(starts, ends))])


async def claim_partition(session: AsyncSession, campaign_id: str, lease: Lease) -> Partition | None:
    """Takes one partition of an in-progress delivery that no replica holds, skipping rows
    another transaction holds; None when there is none left to take."""
    in_progress = select(deliveries.c.status).where(deliveries.c.campaign_id == campaign_id).scalar_subquery()
    unheld = (select(partitions.c.part)
              .where(partitions.c.campaign_id == campaign_id, ~partitions.c.done, _unheld(partitions.c.lease_until),
                     in_progress == IN_PROGRESS)
              .order_by(partitions.c.part).limit(1).with_for_update(skip_locked=True))
    taken = (update(partitions)
             .where(partitions.c.campaign_id == campaign_id, partitions.c.part == unheld.scalar_subquery())
             .values(owner=lease.owner, lease_until=lease.until())
             .returning(partitions.c.part, partitions.c.cursor, partitions.c.last_id))
    row = (await session.execute(taken)).first()
    return Partition(campaign_id, row.part, row.cursor, row.last_id) if row is not None else None


async def partition_checkpoint(session: AsyncSession, partition: Partition) -> str:
    return await session.scalar(select(partitions.c.cursor).where(
        partitions.c.campaign_id == partition.campaign_id, partitions.c.part == partition.part)) or ""


def _held(partition: Partition, lease: Lease) -> Update:
    """An UPDATE of the partition that changes it only while the lease's replica holds it."""
    return update(partitions).where(partitions.c.campaign_id == partition.campaign_id,
                                    partitions.c.part == partition.part, partitions.c.owner == lease.owner,
                                    ~partitions.c.done)


async def hold_partition(session: AsyncSession, partition: Partition, lease: Lease) -> bool:
    """Renews the hold and locks the partition's row; False when another replica took it over."""
    return await _changed(session, _held(partition, lease).values(lease_until=lease.until())) == 1


async def move_partition_cursor(session: AsyncSession, partition: Partition, cursor: str) -> None:
    await session.execute(update(partitions).where(partitions.c.campaign_id == partition.campaign_id,
                                                   partitions.c.part == partition.part).values(cursor=cursor))


async def finish_partition(session: AsyncSession, partition: Partition, lease: Lease) -> bool | None:
    """Marks the partition streamed to its end; whether it was the delivery's last open one
    (None: another replica holds it now). The open partitions are counted under the delivery's
    row lock, so that of two replicas finishing its last partitions at once the second sees the
    first's; the partition's row is locked before the delivery's, as by a batch."""
    if await _changed(session, _held(partition, lease).values(done=True, lease_until=None)) != 1:
        return None
    await lock_delivery(session, partition.campaign_id)
    return not await any_open_partition(session, partition.campaign_id)


async def any_open_partition(session: AsyncSession, campaign_id: str) -> bool:
    return bool(await session.scalar(select(exists().where(partitions.c.campaign_id == campaign_id,
                                                           ~partitions.c.done))))


async def uncompleted_campaign_ids(session: AsyncSession, limit: int = 100) -> list[str]:
    """In-progress deliveries cut into partitions none of which is open: their last one was
    finished while they were paused, and the run that would complete them is gone."""
    rows = await session.execute(
        select(deliveries.c.campaign_id)
        .where(deliveries.c.status == IN_PROGRESS,
               exists().where(partitions.c.campaign_id == deliveries.c.campaign_id),
               ~exists().where(partitions.c.campaign_id == deliveries.c.campaign_id, ~partitions.c.done))
        .limit(limit))
    return [row.campaign_id for row in rows]


async def claimable_campaign_ids(session: AsyncSession, limit: int = 100) -> list[str]:
    """In-progress deliveries with a partition no replica holds."""
    rows = await session.execute(
        select(partitions.c.campaign_id).distinct()
        .join(deliveries, deliveries.c.campaign_id == partitions.c.campaign_id)
        .where(~partitions.c.done, _unheld(partitions.c.lease_until), deliveries.c.status == IN_PROGRESS)
        .limit(limit))
    return [row.campaign_id for row in rows]


async def holds(session: AsyncSession, campaign_id: str, lease: Lease | None,
                partition: Partition | None = None) -> bool:
    """Locks the delivery's row (the partition's, when given) and says whether the lease's
    replica still holds it (always True without a lease: SQLite's one replica)."""
    if lease is None:
        return True
    if partition is not None:
        return await hold_partition(session, partition, lease)
    owner = await session.scalar(select(deliveries.c.owner).where(deliveries.c.campaign_id == campaign_id)
                                 .with_for_update())
    return owner == lease.owner


async def set_recipients_total(session: AsyncSession, campaign_id: str, total: int, now: dt.datetime) -> None:
    await session.execute(update(deliveries).where(deliveries.c.campaign_id == campaign_id)
                          .values(recipients_total=total, updated_at=now))


RATE_WINDOW_S = 2.0  # the send rate is measured over at least this long


async def add_progress(session: AsyncSession, campaign_id: str, deltas: dict[str, int], cursor: str | None,
                       now: dt.datetime, *, generation: int | None = None, clock_s: float | None = None) -> bool:
    """Adds a batch's counters and, when given, moves the checkpoint past it; given the run's
    generation, only while the delivery is in progress in it (False when it is not). With the
    pace clock's time (`clock_s`), measures the send rate once RATE_WINDOW_S has passed."""
    values: dict[str, Any] = {name: deliveries.c[name] + deltas[name] for name in COUNTERS if deltas.get(name)}
    if clock_s is not None:
        values.update(_rate_values(clock_s, sum(deltas.get(name, 0) for name in ("sent", "skipped", "failed"))))
    if cursor is not None:
        values["cursor"] = cursor
    values["updated_at"] = now
    stmt = _update_in_progress(campaign_id, generation) if generation is not None else \
        update(deliveries).where(deliveries.c.campaign_id == campaign_id)
    return await _changed(session, stmt.values(**values)) == 1


async def take_pace(session: AsyncSession, campaign_id: str, now: float, seconds: float) -> float:
    """Pushes the time the delivery may send again by `seconds` (a batch's worth at its rate)
    and returns it: from where it was, or from `seconds` before `now` if that is later (a batch
    written a little late does not slow the rate; an idle spell earns no more than one batch).
    The row stays locked until the transaction ends, so replicas take turns."""
    paced_until = deliveries.c.paced_until
    later = func.greatest if session.get_bind().dialect.name == "postgresql" else func.max  # SQLite's max(a, b) is scalar
    pushed = (update(deliveries).where(deliveries.c.campaign_id == campaign_id)
              .values(paced_until=later(func.coalesce(paced_until, now), now - seconds) + seconds)
              .returning(paced_until))
    return float((await session.execute(pushed)).scalar_one())


def _rate_values(clock_s: float, handled: int) -> dict[str, ColumnElement[Any]]:
    """The rate columns after a batch of `handled` recipients at `clock_s` (SET expressions read
    the row as it was: the same on both backends)."""
    c = deliveries.c
    after = c.sent + c.skipped + c.failed + handled
    elapsed = clock_s - c.rate_from
    due = or_(c.rate_from.is_(None), elapsed >= RATE_WINDOW_S)
    return {"rate": case((c.rate_from.is_(None), c.rate), (elapsed >= RATE_WINDOW_S, (after - c.rate_base) / elapsed),
                         else_=c.rate),
            "rate_base": case((due, after), else_=c.rate_base),
            "rate_from": case((due, clock_s), else_=c.rate_from)}


async def complete_delivery(session: AsyncSession, campaign_id: str, now: dt.datetime) -> bool:
    """Marks an in-progress delivery completed; recipients_total becomes what was handled."""
    handled = deliveries.c.sent + deliveries.c.skipped + deliveries.c.failed
    completed = _update_in_progress(campaign_id).values(status=COMPLETED, recipients_total=handled,
                                                        completed_at=now, updated_at=now)
    return await _changed(session, completed) == 1


async def stop_delivery(session: AsyncSession, campaign_id: str, reason: int, message: str,
                        now: dt.datetime) -> bool:
    """Marks an in-progress or paused delivery stopped; False when it was neither."""
    stopped = (update(deliveries).where(deliveries.c.campaign_id == campaign_id, deliveries.c.status.in_(STOPPABLE))
               .values(status=STOPPED, stop_reason=reason, stop_message=message, updated_at=now))
    return await _changed(session, stopped) == 1


async def users_read_counts(session: AsyncSession, campaign_ids: Iterable[str]) -> dict[str, int]:
    ids = list(campaign_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(reads.c.campaign_id, func.count()).where(reads.c.campaign_id.in_(ids))
        .group_by(reads.c.campaign_id))
    return {campaign_id: count for campaign_id, count in rows}


# --- batches ---------------------------------------------------------------------------------

async def logged_target_ids(session: AsyncSession, campaign_id: str, first: str, last: str) -> set[str]:
    """Targets in [first, last] that already have an outcome (a replayed batch after a crash)."""
    rows = await session.execute(
        select(recipient_log.c.target_id).where(recipient_log.c.campaign_id == campaign_id,
                                                recipient_log.c.target_id >= first,
                                                recipient_log.c.target_id <= last))
    return {r.target_id for r in rows}


# A time as the driver takes it (DriverValues.time): text on SQLite, a datetime for asyncpg.
DriverTime = str | dt.datetime


class RecipientLogRow(NamedTuple):
    """One recipient's outcome: a `recipient_log` row."""

    campaign_id: str
    target_id: str
    status: int
    reason: str
    cid: str
    message_id: str
    created_at: DriverTime


class MessageRow(NamedTuple):
    """A campaign's message: a `messages` row, attachments and custom as JSON text."""

    id: str
    cid: str
    type: str
    text: str
    user_id: str
    attachments: str
    custom: str
    poll_id: str
    created_by_campaign_id: str
    created_at: DriverTime


class EventRow(NamedTuple):
    """An outbox event: an `events` row, user_ids as JSON text, payload the Event proto's bytes."""

    id: str
    type: str
    campaign_id: str
    cid: str
    message_id: str
    user_ids: str
    payload: bytes
    created_at: DriverTime


async def insert_recipient_log(session: AsyncSession, values: DriverValues, rows: Sequence[RecipientLogRow]) -> None:
    """Logs outcomes; a target already logged for the campaign keeps its first one."""
    await write_tuples(session, values, recipient_log, RecipientLogRow._fields, rows)


async def insert_messages(session: AsyncSession, values: DriverValues, rows: Sequence[MessageRow]) -> None:
    await write_tuples(session, values, messages, MessageRow._fields, rows)


async def insert_events(session: AsyncSession, values: DriverValues, rows: Sequence[EventRow]) -> None:
    """Adds events to the outbox; an event id already there is left as it is.

    On PostgreSQL the sequencer positions them once committed. On SQLite they are positioned
    here, with their in-app rows, in the writer's own transaction: SQLite has one writer at a
    time, so transactions commit in the order they take positions, and the sequencer's second
    pass over every row (an UPDATE per event, the in-app rows read back out of user_ids) is saved.
    """
    if not rows:
        return
    if not values.sqlite:
        await write_tuples(session, values, events, EventRow._fields, rows)
        return
    last = await claim_sequencer(session)
    await write_tuples(session, values, events, (*EventRow._fields, "position"),
                       [(*row, last + i) for i, row in enumerate(rows, 1)])
    through = last + len(rows)
    # Read back out of user_ids by SQLite itself, off the event loop's thread.
    await index_in_app_events(session, last, through)
    await session.execute(update(event_sequencer).where(event_sequencer.c.id == SEQUENCER_ROW)
                          .values(last_position=through))


async def write_rows(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """Bulk insert (executemany); rows already present are left as they are."""
    if rows:
        await session.execute(insert_ignoring_duplicates(session, table), rows)


async def messages_this_month(session: AsyncSession, now: dt.datetime) -> int:
    return await messages_in_month(session, month_of(now))


async def messages_in_month(session: AsyncSession, month: str) -> int:
    """Messages written in `month` ("YYYY-MM"): the sum of what every batch's transaction took
    along with the messages it wrote, so exact whatever crashed in between (0: none)."""
    value = await session.scalar(select(monthly_usage.c.messages).where(monthly_usage.c.month == month))
    return value or 0


async def take_monthly_usage(session: AsyncSession, now: dt.datetime, count: int, capacity: int, *,
                             whole: bool = False) -> int:
    """Adds up to `count` messages to the month's usage, no more than fit within `capacity` (0 =
    unlimited), in one atomic step: returns how many it took (`whole`: all of them or none). The
    month's row stays locked to the end of the transaction, so a concurrent writer (another
    campaign or replica, on PostgreSQL) takes from what this one left, never from the same remainder."""
    if count <= 0:
        return 0
    month = month_of(now)
    stmt = dialect_insert(session, monthly_usage).values(month=month, messages=count)
    stmt = stmt.on_conflict_do_update(index_elements=[monthly_usage.c.month],
                                      set_={"messages": monthly_usage.c.messages + count})
    after = (await session.execute(stmt.returning(monthly_usage.c.messages))).scalar_one()
    if capacity <= 0:
        return count
    before = after - count
    taken = max(0, min(count, capacity - before))
    if whole and taken < count:
        taken = 0
    if taken < count:  # past the capacity: give back what does not fit
        await session.execute(update(monthly_usage).where(monthly_usage.c.month == month)
                              .values(messages=before + taken))
    return taken


# --- test sends ------------------------------------------------------------------------------

async def insert_test_messages(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Writes a test send's few messages (column values); returns the ids written now. One already
    there (the same test send, retried) is left as it is and not returned: counted once, even when
    two retries race (PostgreSQL makes the second wait for the first's commit, then skip it)."""
    if not rows:
        return set()
    inserted = await session.execute(insert_ignoring_duplicates(session, messages).values(list(rows))
                                     .returning(messages.c.id))
    return {row[0] for row in inserted}


async def messages_by_ids(session: AsyncSession, ids: Sequence[str]) -> dict[str, Row[Any]]:
    rows = await session.execute(select(messages).where(in_list(messages.c.id, list(ids))))
    return {row.id: row for row in rows}


async def record_test_send(session: AsyncSession, campaign_id: str, skip_push: bool, skip_webhook: bool,
                           now: dt.datetime) -> None:
    """Keeps the campaign's skip flags as its latest test send had them."""
    stmt = dialect_insert(session, test_sends).values(campaign_id=campaign_id, skip_push=skip_push,
                                                      skip_webhook=skip_webhook, updated_at=now)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=[test_sends.c.campaign_id],
        set_={"skip_push": skip_push, "skip_webhook": skip_webhook, "updated_at": now}))


async def test_send_flags(session: AsyncSession, campaign_ids: Sequence[str]) -> dict[str, tuple[bool, bool]]:
    """(skip_push, skip_webhook) of the latest test send of each campaign that had one."""
    rows = await session.execute(select(test_sends).where(test_sends.c.campaign_id.in_(list(campaign_ids))))
    return {row.campaign_id: (row.skip_push, row.skip_webhook) for row in rows}


# --- events ----------------------------------------------------------------------------------

async def get_event(session: AsyncSession, event_id: str) -> Row[Any]:
    """An event known to be stored (written in the same transaction)."""
    return (await session.execute(select(events).where(events.c.id == event_id))).one()


# --- reads -----------------------------------------------------------------------------------

async def mark_read(session: AsyncSession, user_id: str, cid: str, now: dt.datetime) -> tuple[int, list[str]]:
    """Makes `user_id` a reader of every campaign with a message in `cid` by someone else (test
    messages aside: they are never in a campaign's stats). Returns how many of those campaign
    messages became read (the ones of campaigns the user had not read before) and those
    campaigns. Independent of times, so a read that lands while a campaign's batch is being
    written is counted once the message is there."""
    rows = await session.execute(
        select(messages.c.created_by_campaign_id, func.count())
        .where(messages.c.cid == cid, messages.c.user_id != user_id,
               ~messages.c.id.startswith(TEST_MESSAGE_PREFIX, autoescape=True))
        .group_by(messages.c.created_by_campaign_id))
    counts = {campaign_id: count for campaign_id, count in rows}
    if not counts:
        return 0, []
    # RETURNING lists only the rows inserted: concurrent calls cannot both count a campaign.
    inserted = await session.execute(insert_ignoring_duplicates(session, reads).values(
        [{"campaign_id": c, "user_id": user_id, "created_at": now} for c in counts]).returning(reads.c.campaign_id))
    newly_read = [row[0] for row in inserted]
    return sum(counts[c] for c in newly_read), newly_read


# --- the event log: positions ------------------------------------------------------------------

event_sequencer = Table(
    "event_sequencer", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always SEQUENCER_ROW
    Column("last_position", BigInteger, nullable=False),
)
SEQUENCER_ROW = 1


async def claim_sequencer(session: AsyncSession) -> int:
    """The last position given out. Writes first, so that on SQLite the transaction holds the
    write lock before it reads (a read-then-write transaction could find its snapshot stale)."""
    await session.execute(insert_ignoring_duplicates(session, event_sequencer).values(id=SEQUENCER_ROW,
                                                                                      last_position=0))
    last = await session.scalar(select(event_sequencer.c.last_position)
                                .where(event_sequencer.c.id == SEQUENCER_ROW).with_for_update())
    return int(last or 0)


async def any_unpositioned(session: AsyncSession) -> bool:
    """Whether a committed event waits for its position (a cheap read on the partial index)."""
    found = await session.scalar(select(events.c.sequence).where(events.c.position.is_(None)).limit(1))
    return found is not None


async def position_events(session: AsyncSession, last: int, limit: int) -> tuple[int, int]:
    """Positions up to `limit` committed events that have none, in insertion order, after `last`
    (position = sequence + a shift, so one UPDATE does the batch; gaps are allowed). Returns the
    events positioned and the new last position. The caller holds the sequencer (claim_sequencer)."""
    batch = (select(events.c.sequence).where(events.c.position.is_(None))
             .order_by(events.c.sequence).limit(limit).subquery())
    low, high = (await session.execute(select(func.min(batch.c.sequence), func.max(batch.c.sequence)))).one()
    if low is None:
        return 0, last
    shift = last + 1 - low
    # Rows inside [low, high] that committed since the SELECT are positioned too: still above `last`.
    result = await session.execute(
        update(events).where(events.c.position.is_(None), events.c.sequence >= low, events.c.sequence <= high)
        .values(position=events.c.sequence + shift))
    new_last = high + shift
    await session.execute(update(event_sequencer).where(event_sequencer.c.id == SEQUENCER_ROW)
                          .values(last_position=new_last))
    return rows_changed(result), new_last


async def last_position(session: AsyncSession) -> int:
    """The last position given out (0 before the first)."""
    value = await session.scalar(select(event_sequencer.c.last_position)
                                 .where(event_sequencer.c.id == SEQUENCER_ROW))
    return int(value or 0)


def _for_any_user(session: AsyncSession, user_ids: Sequence[str]) -> ColumnElement[bool]:
    """events.user_ids holds one of `user_ids`: JSONB's ?| on PostgreSQL, json_each on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return events.c.user_ids.op("?|", return_type=Boolean)(postgresql.array(list(user_ids)))
    member = func.json_each(events.c.user_ids).table_valued("value")
    return exists(select(literal(1)).select_from(member).where(member.c.value.in_(list(user_ids))))


def _with_messages() -> Select[Any]:
    """Events, each with its message's columns for message.new (`m_*`, NULL otherwise)."""
    return (select(events, *(column.label(f"m_{column.name}") for column in messages.c))
            .select_from(events.outerjoin(messages, messages.c.id == events.c.message_id)))


def _in_shard(number: int, shards: int) -> ColumnElement[bool]:
    """The events of dispatch shard `number` of `shards`: a campaign's own events (campaign.*, a
    few per campaign) all in shard 0, so they keep their order; any other by position % shards."""
    own = events.c.type.in_(event_types.CAMPAIGN_EVENTS)
    by_position = events.c.position % shards == number
    return or_(own, by_position) if number == 0 else and_(~own, by_position)


async def events_after(session: AsyncSession, after: int, limit: int, *, user_ids: Sequence[str] = (),
                       types: Sequence[str] = (), shard: tuple[int, int] = (0, 1)) -> list[Row[Any]]:
    """Up to `limit` positioned events after position `after`, in position order, each with its
    message's columns for message.new (`m_*`, NULL otherwise); only those for one of `user_ids`
    and of one of `types` when given (empty: any), and of `shard` (number, of shards)."""
    query = _with_messages().where(events.c.position > after).order_by(events.c.position).limit(limit)
    if shard[1] > 1:
        query = query.where(_in_shard(*shard))
    if user_ids:
        query = query.where(_for_any_user(session, user_ids))
    if types:
        query = query.where(events.c.type.in_(list(types)))
    return list(await session.execute(query))


# --- dispatch: positions, dead letters, replays -------------------------------------------------

# Where each shard of each destination ("webhook", "push") stands in the event log: every event
# of shard `shard` of `shards` (position % shards = shard) at or before `position` is done for
# the destination (delivered, not for it, or dead-lettered). Rows of another shard count are
# those of an earlier HERALD_DISPATCH_SHARDS, until a dispatcher with the new count takes over.
dispatch_positions = Table(
    "dispatch_positions", metadata,
    Column("destination", String(32), primary_key=True),
    Column("shards", Integer, primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


def _letter_columns() -> list[Column[Any]]:
    """What a dead letter holds, and a replay queued from it: the whole Event (`event`, proto
    bytes, so it outlives the event log) and the history of its attempts."""
    return [
        Column("id", String(36), primary_key=True),
        Column("destination", String(32), nullable=False),
        Column("webhook_id", IdString(), nullable=False),
        Column("event_id", IdString(600), nullable=False),
        Column("type", String(64), nullable=False),
        Column("campaign_id", IdString(), nullable=False),
        Column("device_id", IdString(), nullable=False),
        Column("url", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("last_http_status", Integer, nullable=False),
        Column("last_error", Text, nullable=False),
        Column("event", LargeBinary, nullable=False),
        Column("first_attempt_at", UtcDateTime, nullable=True),
        Column("last_attempt_at", UtcDateTime, nullable=True),
        Column("created_at", UtcDateTime, nullable=False),
    ]


dead_letters = Table("dead_letters", metadata, *_letter_columns())
Index("ix_dead_letters_created_at_id", dead_letters.c.created_at, dead_letters.c.id)
Index("ix_dead_letters_campaign_id", dead_letters.c.campaign_id, dead_letters.c.id)
Index("ix_dead_letters_webhook_id", dead_letters.c.webhook_id)

# Dead letters a ReplayDeadLetters took off the list, until their destination is done with them
# (`created_at`: when the replay queued it).
replays = Table("replays", metadata, *_letter_columns())
Index("ix_replays_destination_created_at_id", replays.c.destination, replays.c.created_at, replays.c.id)


async def claim_dispatch_shards(session: AsyncSession, destination: str, shards: int, start: int,
                                now: dt.datetime) -> dict[int, int]:
    """Where each of the destination's `shards` shards stands, by shard. Shards met for the first
    time start where every shard of the count before stood (the lowest of those positions: the
    single position of before shards, a changed HERALD_DISPATCH_SHARDS), else at `start` (a new
    destination); the rows of other counts then go. So nothing is skipped, and what is re-sent is
    at most what a shard of the old count had passed beyond the slowest."""
    counts = dispatch_positions.c.shards
    where = dispatch_positions.c.destination == destination
    rows = list(await session.execute(select(counts, dispatch_positions.c.shard, dispatch_positions.c.position)
                                      .where(where)))
    have = {shard for count, shard, _ in rows if count == shards}
    if len(have) < shards:
        before = [position for count, _, position in rows if count != shards]
        begin = min(before) if before else start
        await session.execute(insert_ignoring_duplicates(session, dispatch_positions), [
            {"destination": destination, "shards": shards, "shard": shard, "position": begin, "updated_at": now}
            for shard in range(shards) if shard not in have])
    if len(rows) > len(have):
        await session.execute(delete(dispatch_positions).where(where, counts != shards))
    return await shard_positions(session, destination, shards)


async def shard_positions(session: AsyncSession, destination: str, shards: int) -> dict[int, int]:
    """Where each of the destination's `shards` shards stands (those stored), by shard."""
    rows = await session.execute(select(dispatch_positions.c.shard, dispatch_positions.c.position)
                                 .where(dispatch_positions.c.destination == destination,
                                        dispatch_positions.c.shards == shards))
    return {int(shard): int(position) for shard, position in rows}


async def move_dispatch_position(session: AsyncSession, destination: str, shards: int, shard: int, position: int,
                                 now: dt.datetime) -> None:
    """Moves the shard past `position` (never back: a late write of an older one is a no-op)."""
    await session.execute(update(dispatch_positions).where(
        dispatch_positions.c.destination == destination, dispatch_positions.c.shards == shards,
        dispatch_positions.c.shard == shard, dispatch_positions.c.position < position)
        .values(position=position, updated_at=now))


async def dispatch_positions_of(session: AsyncSession, destinations: Sequence[str]) -> dict[str, int]:
    """How far each destination has passed every event: its slowest shard's position."""
    rows = await session.execute(select(dispatch_positions.c.destination, func.min(dispatch_positions.c.position))
                                 .where(dispatch_positions.c.destination.in_(list(destinations)))
                                 .group_by(dispatch_positions.c.destination))
    return {name: int(position) for name, position in rows}


async def insert_dead_letters(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert_ignoring_duplicates(session, dead_letters), list(rows))


async def queue_replays(session: AsyncSession, condition: ColumnElement[bool], limit: int,
                        now: dt.datetime) -> int:
    """Moves up to `limit` dead letters matching `condition` to the replay queue; how many moved.
    Deletes first, so that on SQLite the transaction takes the write lock before it reads."""
    ids = select(dead_letters.c.id).where(condition).order_by(dead_letters.c.created_at, dead_letters.c.id) \
        .limit(limit).scalar_subquery()
    moved = list(await session.execute(delete(dead_letters).where(dead_letters.c.id.in_(ids))
                                       .returning(*dead_letters.c)))
    if moved:
        await session.execute(insert_ignoring_duplicates(session, replays),
                              [{**row._asdict(), "created_at": now} for row in moved])
    return len(moved)


async def queued_replays(session: AsyncSession, destination: str, after: tuple[dt.datetime, str] | None,
                         limit: int) -> list[Row[Any]]:
    """The destination's queued replays in queue order, after the (created_at, id) key `after`."""
    query = select(replays).where(replays.c.destination == destination)
    if after is not None:
        query = query.where(tuple_(replays.c.created_at, replays.c.id) > tuple_(*after))
    return list(await session.execute(query.order_by(replays.c.created_at, replays.c.id).limit(limit)))


async def delete_replays(session: AsyncSession, ids: Sequence[str]) -> None:
    if ids:
        await session.execute(delete(replays).where(replays.c.id.in_(list(ids))))


# --- retention --------------------------------------------------------------------------------

async def prune_events(session: AsyncSession, passed: int | None, before: dt.datetime, limit: int) -> int:
    """Deletes up to `limit` events created before `before` that every destination has passed
    (position ≤ `passed`; None: no destination to wait for); how many went."""
    condition = events.c.position.is_not(None) & (events.c.created_at < before)
    if passed is not None:
        condition = condition & (events.c.position <= passed)
    doomed = select(events.c.sequence).where(condition).order_by(events.c.position).limit(limit).scalar_subquery()
    return rows_changed(await session.execute(delete(events).where(events.c.sequence.in_(doomed))))


async def prune_dead_letters(session: AsyncSession, before: dt.datetime, limit: int) -> int:
    doomed = select(dead_letters.c.id).where(dead_letters.c.created_at < before).limit(limit).scalar_subquery()
    return rows_changed(await session.execute(delete(dead_letters).where(dead_letters.c.id.in_(doomed))))


# --- in-app: who each event is for -------------------------------------------------------------

# The events in-app subscribers receive; campaign.* events are for webhooks only.
IN_APP_TYPES = event_types.PER_RECIPIENT

# One row per user an in-app event is for (its `user_ids`), so that a subscriber finds its users'
# events through an index instead of reading every event's user_ids. The sequencer writes them
# in the transaction that positions the events (on SQLite, the batch's: insert_events): a
# position is never visible without them. No
# foreign key to events: on PostgreSQL its check per row tripled the cost of writing them; the
# rows of pruned events go a little later instead (retention's forget_in_app_rows), and a subscriber
# reading one before then finds its event gone (which it reports as pruned).
event_users = Table(
    "event_users", metadata,
    Column("user_id", IdString(), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    sqlite_with_rowid=False,
)
# Where the rows of pruned events are found.
Index("ix_event_users_position", event_users.c.position)


def _one_of(session: AsyncSession, column: ColumnElement[str], values: Sequence[str]) -> ColumnElement[bool]:
    """`column` is one of `values`, passed as one parameter however many there are (a subscriber
    names up to 1,000 users, the fan-out every live subscriber's)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("one_of", list(values), type_=postgresql.ARRAY(String)))
    listed = func.json_each(bindparam("one_of", json.dumps(list(values)))).table_valued("value")
    return column.in_(select(listed.c.value))


async def index_in_app_events(session: AsyncSession, after: int, through: int) -> None:
    """Records who the in-app events positioned in (`after`, `through`] are for."""
    if session.get_bind().dialect.name == "postgresql":
        user_ids = func.jsonb_array_elements_text(events.c.user_ids).table_valued("value")
    else:
        user_ids = func.json_each(events.c.user_ids).table_valued("value")
    # Each event is positioned once, so its rows are new; DISTINCT in case a user is listed twice.
    pairs = (select(user_ids.c.value, events.c.position).distinct().select_from(events).join(user_ids, literal(True))
             .where(events.c.position > after, events.c.position <= through, events.c.type.in_(IN_APP_TYPES)))
    await session.execute(insert(event_users).from_select(["user_id", "position"], pairs))


async def forget_in_app_rows(session: AsyncSession, limit: int) -> int:
    """Deletes up to `limit` in-app rows of pruned events (below the oldest position kept, or
    all when no event is kept); how many went."""
    last_given = select(event_sequencer.c.last_position).where(event_sequencer.c.id == SEQUENCER_ROW)
    oldest_kept = select(func.coalesce(func.min(events.c.position), last_given.scalar_subquery() + 1, 0))
    pruned = (select(event_users.c.position).where(event_users.c.position < oldest_kept.scalar_subquery())
              .order_by(event_users.c.position).limit(limit))
    return rows_changed(await session.execute(delete(event_users).where(event_users.c.position.in_(pruned))))


class LogBounds(NamedTuple):
    oldest: int | None  # the oldest position kept; None when none is
    last_given: int  # the last position given out; 0 before the first

    @property
    def resumable(self) -> int:
        """The lowest position after which every event is still kept. The oldest events are pruned
        first, so that is the one before the oldest kept (what lies between, gaps or pruned events,
        is gone); when nothing is kept, the last one given out."""
        return self.last_given if self.oldest is None else self.oldest - 1


async def log_bounds(session: AsyncSession) -> LogBounds:
    """The event log's bounds, read together."""
    oldest = select(func.min(events.c.position)).scalar_subquery()
    last = select(event_sequencer.c.last_position).where(event_sequencer.c.id == SEQUENCER_ROW).scalar_subquery()
    first, given = (await session.execute(select(oldest, last))).one()
    return LogBounds(None if first is None else int(first), int(given or 0))


async def positions_for_users(session: AsyncSession, user_ids: Sequence[str], after: int, through: int,
                              limit: int) -> list[int]:
    """The first `limit` positions in (`after`, `through`] of in-app events for one of `user_ids`."""
    rows = await session.scalars(
        select(event_users.c.position).distinct()
        .where(_one_of(session, event_users.c.user_id, user_ids), event_users.c.position > after,
               event_users.c.position <= through)
        .order_by(event_users.c.position).limit(limit))
    return [int(position) for position in rows]


async def events_at(session: AsyncSession, positions: Sequence[int]) -> list[Row[Any]]:
    """The events kept at `positions`, in position order, with their message's columns for
    message.new (`m_*`)."""
    if not positions:
        return []
    return list(await session.execute(
        _with_messages().where(in_list(events.c.position, list(positions))).order_by(events.c.position)))
