"""Tables of the segment service and the SQL that reads and writes them.

Layout notes:
- `users.doc` holds the user serialized as a `User` message without timestamps, kept in step
  with the columns by every write. The recipient stream and GetUsers answer from it without
  rebuilding a `Struct` per user, which is what makes streaming a million users cheap.
- Keyed tables are SQLite `WITHOUT ROWID`, so scanning them in key order (the audience is
  ordered by target id) reads pages sequentially.
- Deleting a segment deletes it and its targets outright (hard delete): `deleted_at` of the
  message stays unset, and a deleted id can be used again.
- `ensured_channels` remembers each EnsureChannels outcome per (campaign, recipient), so a
  retried or resumed batch reports the same outcome and `channels_created` stays exact.
- `segments.size_dirty` marks filter / all-users segments whose size the background worker
  (sizes.py) must recompute.
- `devices` are keyed (user_id, id), so a user's devices are one range of the key; no foreign
  key to `users`: deleting users deletes their devices in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (JSON, Boolean, Column, ForeignKey, Index, Integer, LargeBinary, PrimaryKeyConstraint, Row,
                        String, Table, bindparam, delete, func, literal, or_, select, union, update)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement, CompoundSelect, Select

from services.kit.bulk import DriverValues, write_tuples
from services.kit.db import IdString, JsonDoc, UtcDateTime, dialect_insert, new_metadata, rows_changed
from services.kit.limits import MAX_CHANNEL_TYPE, MAX_CID, MAX_REASON_CHARS
from services.kit.filters import in_list

metadata = new_metadata()
# A JSON column where Python None is SQL NULL (plain JsonDoc stores the JSON value null).
NullableJsonDoc = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_NO_ROWID: dict[str, Any] = {"sqlite_with_rowid": False}

users = Table(
    "users", metadata,
    Column("id", IdString(), primary_key=True),
    Column("name", String(), nullable=False, default=""),
    Column("role", String(), nullable=False, default=""),
    Column("teams", JsonDoc, nullable=False),
    Column("custom", JsonDoc, nullable=False),
    Column("doc", LargeBinary(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    **_NO_ROWID,
)

channels = Table(
    "channels", metadata,
    Column("cid", IdString(MAX_CID), primary_key=True),
    Column("type", IdString(MAX_CHANNEL_TYPE), nullable=False),
    Column("id", IdString(), nullable=False),
    Column("team", String(), nullable=False, default=""),
    Column("custom", JsonDoc, nullable=False),
    Column("created_by_id", IdString(), nullable=False, default=""),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    **_NO_ROWID,
)

channel_members = Table(
    "channel_members", metadata,
    Column("cid", IdString(MAX_CID), nullable=False),
    Column("user_id", IdString(), nullable=False),
    Column("channel_role", String(), nullable=False, default="channel_member"),
    Column("hidden", Boolean(), nullable=False, default=False),
    Column("archived_at", UtcDateTime(), nullable=True),
    Column("custom", JsonDoc, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("cid", "user_id"),
    Index("ix_channel_members_user_id_cid", "user_id", "cid"),
    **_NO_ROWID,
)

segments = Table(
    "segments", metadata,
    Column("id", IdString(), primary_key=True),
    Column("type", String(16), nullable=False),  # "user" | "channel"
    Column("name", String(), nullable=False, default=""),
    Column("description", String(), nullable=False, default=""),
    Column("filter", NullableJsonDoc, nullable=True),  # NULL: not a filter segment
    Column("all_users", Boolean(), nullable=False, default=False),
    Column("all_sender_channels", Boolean(), nullable=False, default=False),
    Column("size", Integer(), nullable=False, default=0),
    Column("size_dirty", Boolean(), nullable=False, default=False),
    Column("created_at", UtcDateTime(), nullable=False, index=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

segment_targets = Table(
    "segment_targets", metadata,
    Column("segment_id", IdString(), ForeignKey("segments.id", ondelete="CASCADE"), nullable=False),
    Column("target_id", IdString(MAX_CID), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("segment_id", "target_id"),
    **_NO_ROWID,
)

devices = Table(
    "devices", metadata,
    Column("user_id", IdString(), nullable=False),
    Column("id", IdString(), nullable=False),
    Column("provider", String(16), nullable=False),  # "webpush" | "http"
    Column("endpoint", String(), nullable=False),
    Column("keys", JsonDoc, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("user_id", "id"),
    **_NO_ROWID,
)

ensured_channels = Table(
    "ensured_channels", metadata,
    Column("campaign_id", IdString(), nullable=False),
    Column("recipient_id", IdString(MAX_CID), nullable=False),
    Column("cid", IdString(MAX_CID), nullable=False, default=""),
    Column("created", Boolean(), nullable=False, default=False),
    Column("skip_reason", String(MAX_REASON_CHARS), nullable=False, default=""),
    Column("created_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("campaign_id", "recipient_id"),
    **_NO_ROWID,
)


# ---------------------------------------------------------------------------------------------
# Users

USER_UPDATABLE = ("name", "role", "teams", "custom", "doc", "updated_at")


USER_COLUMNS = ("id", "name", "role", "teams", "custom", "doc", "created_at", "updated_at")


async def upsert_users(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Creates or replaces users in one executemany; `created_at` of existing users is kept.
    The import hot path: rows go to the driver as tuples (services.kit.bulk)."""
    values = DriverValues.of(session)
    times: dict[dt.datetime, Any] = {}  # a batch shares one or two timestamps: encode each once
    for row in rows:
        for key in ("created_at", "updated_at"):
            if row[key] not in times:
                times[row[key]] = values.time(row[key])
    dumps = values.json
    await write_tuples(session, values, users, USER_COLUMNS, [
        (row["id"], row["name"], row["role"], dumps(row["teams"]), dumps(row["custom"]), row["doc"],
         times[row["created_at"]], times[row["updated_at"]]) for row in rows], update=USER_UPDATABLE)


async def users_by_ids(session: AsyncSession, ids: Sequence[str]) -> list[Any]:
    """Rows (id, doc, created_at, updated_at) of the existing users among `ids`, ordered by id."""
    result = await session.execute(
        select(users.c.id, users.c.doc, users.c.created_at, users.c.updated_at)
        .where(in_list(users.c.id, list(ids))).order_by(users.c.id))
    return list(result)


async def existing_user_ids(session: AsyncSession, ids: Iterable[str]) -> set[str]:
    result = await session.execute(select(users.c.id).where(in_list(users.c.id, list(ids))))
    return set(result.scalars())


async def delete_users(session: AsyncSession, ids: Sequence[str]) -> int:
    result = await session.execute(delete(users).where(in_list(users.c.id, list(ids))))
    return rows_changed(result)


# ---------------------------------------------------------------------------------------------
# Channels

CHANNEL_COLUMNS = (channels.c.cid, channels.c.type, channels.c.id, channels.c.team, channels.c.custom,
                   channels.c.created_by_id, channels.c.created_at, channels.c.updated_at)


async def channels_by_cids(session: AsyncSession, cids: Iterable[str]) -> dict[str, Any]:
    cids = list(cids)
    if not cids:
        return {}
    result = await session.execute(select(*CHANNEL_COLUMNS).where(in_list(channels.c.cid, cids)))
    return {row.cid: row for row in result}


async def members_of(session: AsyncSession, cids: Iterable[str]) -> dict[str, list[Any]]:
    """Members of the given channels in one query: cid → member rows ordered by user id."""
    cids = list(cids)
    found: dict[str, list[Any]] = {cid: [] for cid in cids}
    if not cids:
        return found
    result = await session.execute(
        select(channel_members).where(in_list(channel_members.c.cid, cids))
        .order_by(channel_members.c.cid, channel_members.c.user_id))
    for row in result:
        found[row.cid].append(row)
    return found


async def upsert_channels(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Creates or replaces channels (created_at and created_by_id of existing ones are kept)."""
    stmt = dialect_insert(session, channels)
    stmt = stmt.on_conflict_do_update(index_elements=[channels.c.cid], set_={
        "team": stmt.excluded.team, "custom": stmt.excluded.custom, "updated_at": stmt.excluded.updated_at})
    await session.execute(stmt, rows)


async def replace_members(session: AsyncSession, cids: Sequence[str], rows: list[dict[str, Any]]) -> None:
    """Sets the member lists of `cids` to `rows` (members not listed are removed)."""
    await session.execute(delete(channel_members).where(in_list(channel_members.c.cid, list(cids))))
    if rows:
        await session.execute(channel_members.insert(), rows)


CHANNEL_ROW = ("cid", "type", "id", "team", "custom", "created_by_id", "created_at", "updated_at")


async def insert_channels(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Inserts new channels, skipping cids that exist; returns how many were inserted
    (EnsureChannels' hot path: on SQLite one executemany, which counts them)."""
    if not rows:
        return 0
    values = DriverValues.of(session)
    if not values.sqlite:  # asyncpg's executemany does not count rows: RETURNING does
        stmt = dialect_insert(session, channels).on_conflict_do_nothing(index_elements=[channels.c.cid])
        return len((await session.execute(stmt.returning(channels.c.cid), rows)).all())
    connection = await session.connection()
    result = await connection.exec_driver_sql(values.insert_sql(channels, CHANNEL_ROW), [
        (r["cid"], r["type"], r["id"], r["team"], values.json(r["custom"]), r["created_by_id"],
         values.time(r["created_at"]), values.time(r["updated_at"])) for r in rows])
    return result.rowcount


MEMBER_COLUMNS = ("cid", "user_id", "channel_role", "hidden", "archived_at", "custom", "created_at")


async def add_members(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Adds memberships, leaving existing ones as they are (EnsureChannels' hot path)."""
    values = DriverValues.of(session)
    await write_tuples(session, values, channel_members, MEMBER_COLUMNS, [
        (r["cid"], r["user_id"], r["channel_role"], r["hidden"], values.time(r["archived_at"]),
         values.json(r["custom"]), values.time(r["created_at"])) for r in rows])


async def unhide_members(session: AsyncSession, pairs: list[tuple[str, str]]) -> None:
    """Sets hidden = false for the given (cid, user_id) memberships, in one executemany."""
    if pairs:
        cm = channel_members
        await session.execute(
            update(cm).where(cm.c.cid == bindparam("b_cid"), cm.c.user_id == bindparam("b_user_id"))
            .values(hidden=False),
            [{"b_cid": cid, "b_user_id": user_id} for cid, user_id in pairs])


async def delete_memberships(session: AsyncSession, user_ids: Sequence[str]) -> int:
    """Removes the users from every channel; returns how many memberships that was."""
    result = await session.execute(delete(channel_members).where(channel_members.c.user_id.in_(list(user_ids))))
    return rows_changed(result)


async def touch_channels(session: AsyncSession, cids: Iterable[str], now: dt.datetime) -> None:
    cids = list(cids)
    if cids:
        await session.execute(update(channels).where(channels.c.cid.in_(cids)).values(updated_at=now))


# ---------------------------------------------------------------------------------------------
# Devices

class DeviceRow(NamedTuple):
    """A device to store; `created_at` is kept when the device exists."""
    user_id: str
    id: str
    provider: str
    endpoint: str
    keys: dict[str, Any]
    updated_at: dt.datetime


async def upsert_devices(session: AsyncSession, rows: Sequence[DeviceRow]) -> None:
    stmt = dialect_insert(session, devices)
    stmt = stmt.on_conflict_do_update(index_elements=[devices.c.user_id, devices.c.id], set_={
        "provider": stmt.excluded.provider, "endpoint": stmt.excluded.endpoint, "keys": stmt.excluded["keys"],
        "updated_at": stmt.excluded.updated_at})
    await session.execute(stmt, [{**row._asdict(), "created_at": row.updated_at} for row in rows])


async def devices_of(session: AsyncSession, user_ids: Iterable[str]) -> list[Row[Any]]:
    """The devices of the users, ordered by user id, then id."""
    result = await session.execute(select(devices).where(devices.c.user_id.in_(list(user_ids)))
                                   .order_by(devices.c.user_id, devices.c.id))
    return list(result)


async def users_over_device_limit(session: AsyncSession, user_ids: Iterable[str], limit: int) -> list[str]:
    result = await session.execute(select(devices.c.user_id).where(devices.c.user_id.in_(list(user_ids)))
                                   .group_by(devices.c.user_id).having(func.count() > limit))
    return list(result.scalars())


async def delete_devices(session: AsyncSession, user_id: str, ids: Sequence[str]) -> int:
    result = await session.execute(delete(devices).where(devices.c.user_id == user_id,
                                                         devices.c.id.in_(list(ids))))
    return rows_changed(result)


async def delete_devices_of_users(session: AsyncSession, user_ids: Sequence[str]) -> int:
    result = await session.execute(delete(devices).where(devices.c.user_id.in_(list(user_ids))))
    return rows_changed(result)


# ---------------------------------------------------------------------------------------------
# EnsureChannels outcomes

async def ensured_outcomes(session: AsyncSession, campaign_id: str, recipient_ids: Sequence[str]) -> dict[str, Any]:
    """The outcomes recorded for these recipients of the campaign, by recipient id. Read as the
    key range the ids span (the engine's batch is a run of the audience in key order: the range
    holds its recipients only, and normally none is recorded yet). An IN list of a thousand ids
    made PostgreSQL read every outcome of the campaign: each batch slower as the campaign grew."""
    if not recipient_ids:
        return {}
    wanted = set(recipient_ids)
    ec = ensured_channels.c
    result = await session.execute(
        select(ec.recipient_id, ec.cid, ec.created, ec.skip_reason)
        .where(ec.campaign_id == campaign_id, ec.recipient_id >= min(wanted), ec.recipient_id <= max(wanted)))
    return {row.recipient_id: row for row in result if row.recipient_id in wanted}


OUTCOME_COLUMNS = ("campaign_id", "recipient_id", "cid", "created", "skip_reason", "created_at")


async def record_outcomes(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Keeps each (campaign, recipient) outcome; one already recorded stays as it was."""
    values = DriverValues.of(session)
    await write_tuples(session, values, ensured_channels, OUTCOME_COLUMNS, [
        (r["campaign_id"], r["recipient_id"], r["cid"], r["created"], r["skip_reason"], values.time(r["created_at"]))
        for r in rows])


# ---------------------------------------------------------------------------------------------
# Segments

async def segment_by_id(session: AsyncSession, segment_id: str) -> Row[Any] | None:
    result = await session.execute(select(segments).where(segments.c.id == segment_id))
    return result.first()


async def segments_by_ids(session: AsyncSession, ids: Sequence[str]) -> dict[str, Row[Any]]:
    result = await session.execute(select(segments).where(segments.c.id.in_(list(ids))))
    return {row.id: row for row in result}


async def insert_segment(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Inserts a segment; False when the id is taken."""
    stmt = dialect_insert(session, segments).on_conflict_do_nothing(index_elements=[segments.c.id])
    result = await session.execute(stmt.returning(segments.c.id), [row])
    return result.first() is not None


async def update_segment(session: AsyncSession, segment_id: str, values: dict[str, Any]) -> None:
    await session.execute(update(segments).where(segments.c.id == segment_id).values(**values))


async def delete_segment(session: AsyncSession, segment_id: str) -> None:
    await session.execute(delete(segment_targets).where(segment_targets.c.segment_id == segment_id))
    await session.execute(delete(segments).where(segments.c.id == segment_id))


async def mark_sizes_dirty(session: AsyncSession, segment_type: str) -> None:
    """Flags the computed (filter / all-users) segments of a type for a size recount."""
    await session.execute(
        update(segments)
        .where(segments.c.type == segment_type, segments.c.size_dirty == False,  # noqa: E712
               or_(segments.c.all_users == True, segments.c.filter.is_not(None)))  # noqa: E712
        .values(size_dirty=True))


async def dirty_segments(session: AsyncSession) -> list[Row[Any]]:
    result = await session.execute(select(segments).where(segments.c.size_dirty == True))  # noqa: E712
    return list(result)


async def claim_dirty(session: AsyncSession, segment_id: str) -> bool:
    """Clears a segment's dirty flag before its recount; a change after this re-flags it (and
    so does the worker when the recount fails)."""
    result = await session.execute(update(segments).where(segments.c.id == segment_id,
                                                          segments.c.size_dirty == True)  # noqa: E712
                                   .values(size_dirty=False))
    return rows_changed(result) > 0


async def mark_segments_dirty(session: AsyncSession, segment_ids: Iterable[str]) -> None:
    """Flags the given segments for a recount (a recount of theirs failed)."""
    await session.execute(update(segments).where(segments.c.id.in_(list(segment_ids))).values(size_dirty=True))


async def set_size(session: AsyncSession, segment_id: str, size: int) -> None:
    await session.execute(update(segments).where(segments.c.id == segment_id).values(size=size))


async def count_rows(session: AsyncSession, query: Select[Any] | CompoundSelect[Any]) -> int:
    result = await session.execute(select(func.count()).select_from(query.subquery()))
    return int(result.scalar_one())


# ---------------------------------------------------------------------------------------------
# Segment targets

async def add_targets(session: AsyncSession, segment_id: str, target_ids: Sequence[str], now: dt.datetime) -> None:
    stmt = dialect_insert(session, segment_targets).on_conflict_do_nothing(
        index_elements=[segment_targets.c.segment_id, segment_targets.c.target_id])
    await session.execute(stmt, [{"segment_id": segment_id, "target_id": t, "created_at": now}
                                 for t in target_ids])


async def delete_targets(session: AsyncSession, segment_id: str, target_ids: Sequence[str]) -> None:
    await session.execute(delete(segment_targets).where(segment_targets.c.segment_id == segment_id,
                                                        segment_targets.c.target_id.in_(list(target_ids))))


async def refresh_manual_size(session: AsyncSession, segment_id: str, now: dt.datetime) -> None:
    """Sets a manual segment's size to its target count (exact under concurrent adds)."""
    count = (select(func.count()).select_from(segment_targets)
             .where(segment_targets.c.segment_id == segment_id).scalar_subquery())
    await session.execute(update(segments).where(segments.c.id == segment_id)
                          .values(size=count, updated_at=now))


async def target_exists(session: AsyncSession, segment_id: str, target_id: str) -> bool:
    result = await session.execute(select(literal(1)).where(segment_targets.c.segment_id == segment_id,
                                                            segment_targets.c.target_id == target_id))
    return result.first() is not None


# ---------------------------------------------------------------------------------------------
# Audience: id sources and the keyset step over their union

def user_ids_matching(condition: ColumnElement[bool] | None) -> Select:
    """Ids of users matching a filter condition (None = every user)."""
    query = select(users.c.id.label("target_id"))
    return query if condition is None else query.where(condition)


def channel_cids_matching(condition: ColumnElement[bool] | None) -> Select:
    query = select(channels.c.cid.label("target_id"))
    return query if condition is None else query.where(condition)


def manual_target_ids(segment_id: str) -> Select:
    return (select(segment_targets.c.target_id.label("target_id"))
            .where(segment_targets.c.segment_id == segment_id))


def sender_channel_cids(sender_id: str) -> Select:
    return select(channel_members.c.cid.label("target_id")).where(channel_members.c.user_id == sender_id)


def _after(source: Select, cursor: str, exclude: str | None, last: str = "") -> Select:
    """The source's ids after `cursor`, through `last` (both when given), but `exclude`."""
    column = source.selected_columns[0]
    conditions = []
    if cursor:
        conditions.append(column > cursor)
    if last:
        conditions.append(column <= last)
    if exclude:
        conditions.append(column != exclude)
    return source.where(*conditions) if conditions else source


def next_target_ids(sources: Sequence[Select], cursor: str, limit: int, exclude: str | None,
                    last: str = "") -> Select:
    """The `limit` smallest distinct target ids after `cursor` (through `last`) over all sources.

    Each source is cut to its own first `limit` ids (an index range scan on both backends);
    the smallest `limit` of their union are then exactly the union's next `limit`.
    """
    parts = []
    for source in sources:
        column = source.selected_columns[0]
        limited = _after(source, cursor, exclude, last).order_by(column).limit(limit).subquery()
        parts.append(select(limited.c.target_id))
    combined = parts[0] if len(parts) == 1 else union(*parts)
    sub = combined.subquery("audience")
    return select(sub.c.target_id).order_by(sub.c.target_id).limit(limit)


def audience_ids(sources: Sequence[Select], exclude: str | None) -> Select[Any] | CompoundSelect[Any]:
    """The deduplicated audience (for counting)."""
    parts = [_after(source, "", exclude) for source in sources]
    return parts[0].distinct() if len(parts) == 1 else union(*parts)


async def every_nth_id(session: AsyncSession, query: Select[Any] | CompoundSelect[Any], step: int) -> list[str]:
    """The ids at positions step, 2·step, … of the audience `query` ordered by id: one pass,
    numbered by a window function."""
    audience = query.subquery("audience")
    numbered = select(audience.c.target_id,
                      func.row_number().over(order_by=audience.c.target_id).label("n")).subquery("numbered")
    rows = await session.execute(select(numbered.c.target_id).where(numbered.c.n % step == 0)
                                 .order_by(numbered.c.target_id))
    return [row.target_id for row in rows]


def user_docs_for(ids_query: Select) -> Select:
    """(target_id, doc) for a page of target ids; doc is NULL for unknown users."""
    page = ids_query.subquery("page")
    return (select(page.c.target_id, users.c.doc)
            .select_from(page.outerjoin(users, users.c.id == page.c.target_id))
            .order_by(page.c.target_id))


def channel_rows_for(ids_query: Select) -> Select:
    """Channel columns for a page of target cids; cid is NULL for unknown channels."""
    page = ids_query.subquery("page")
    return (select(page.c.target_id, *CHANNEL_COLUMNS)
            .select_from(page.outerjoin(channels, channels.c.cid == page.c.target_id))
            .order_by(page.c.target_id))

