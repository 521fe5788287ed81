"""Segments and their manual targets (the logic behind SegmentService, less the audience)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.db import utcnow
from services.kit.errors import AlreadyExists, FailedPrecondition, NotFound, Violations
from services.segment_svc import reasons, store
from services.segment_svc.filters import audience_condition
from services.segment_svc.validate import check_cid, check_id


def is_manual(row: Row[Any]) -> bool:
    return row.filter is None and not row.all_users and not row.all_sender_channels


def is_computed(row: Row[Any]) -> bool:
    """Whether the segment's size is counted in the background."""
    return row.filter is not None or bool(row.all_users)


async def create_segment(session: AsyncSession, *, id: str, type: str, name: str, description: str,
                         filter: dict | None, all_users: bool, all_sender_channels: bool) -> Row[Any]:
    now = utcnow()
    row: dict[str, Any] = {"id": id or str(uuid.uuid4()), "type": type, "name": name, "description": description,
           "filter": filter, "all_users": all_users, "all_sender_channels": all_sender_channels,
           "size": 0, "size_dirty": filter is not None or all_users, "created_at": now, "updated_at": now}
    if not await store.insert_segment(session, row):
        raise AlreadyExists(f"segment {row['id']!r} already exists", reason=reasons.SEGMENT_ALREADY_EXISTS,
                            metadata={"field": "id"})
    return await get_segment(session, row["id"])


async def get_segment(session: AsyncSession, segment_id: str) -> Row[Any]:
    row = await store.segment_by_id(session, segment_id)
    if row is None:
        raise NotFound(f"segment {segment_id!r} not found", reason=reasons.SEGMENT_NOT_FOUND, metadata={"field": "id"})
    return row


async def update_segment(session: AsyncSession, segment_id: str, changes: dict[str, Any]) -> Row[Any]:
    """Applies the present fields (name, description, filter); a filter only on filter segments."""
    row = await get_segment(session, segment_id)
    if "filter" in changes:
        if row.filter is None:
            raise FailedPrecondition("only a filter segment can change its filter "
                                     "(this one is manual, all_users or all_sender_channels)",
                                     reason=reasons.SEGMENT_WITHOUT_FILTER, metadata={"field": "filter"})
        audience_condition(row.type, changes["filter"])  # malformed → INVALID_ARGUMENT on filter…
        changes["size_dirty"] = True
    if changes:
        await store.update_segment(session, segment_id, {**changes, "updated_at": utcnow()})
    return await get_segment(session, segment_id)


async def delete_segment(session: AsyncSession, segment_id: str) -> None:
    await get_segment(session, segment_id)
    await store.delete_segment(session, segment_id)


async def _manual_segment(session: AsyncSession, segment_id: str, action: str) -> Row[Any]:
    row = await get_segment(session, segment_id)
    if not is_manual(row):
        raise FailedPrecondition(f"targets can only be {action} manual segments "
                                 "(not filter, all_users or all_sender_channels ones)",
                                 reason=reasons.SEGMENT_NOT_MANUAL, metadata={"field": "id"})
    return row


async def add_targets(session: AsyncSession, segment_id: str, target_ids: Sequence[str]) -> Row[Any]:
    row = await _manual_segment(session, segment_id, "added to")
    # Targets are channel cids in channel segments, user ids (≤255) in user segments.
    check = check_cid if row.type == "channel" else check_id
    v = Violations()
    for i, target_id in enumerate(target_ids):
        if not check(v, target_id, f"target_ids[{i}]"):
            break
    v.raise_if_any()
    now = utcnow()
    await store.add_targets(session, segment_id, list(dict.fromkeys(target_ids)), now)
    await store.refresh_manual_size(session, segment_id, now)
    return await get_segment(session, segment_id)


async def delete_targets(session: AsyncSession, segment_id: str, target_ids: Sequence[str]) -> Row[Any]:
    await _manual_segment(session, segment_id, "deleted from")
    await store.delete_targets(session, segment_id, target_ids)
    await store.refresh_manual_size(session, segment_id, utcnow())
    return await get_segment(session, segment_id)


async def target_exists(session: AsyncSession, segment_id: str, target_id: str) -> bool:
    """Manual segments look at their targets; filter and all-users segments at the directory.
    An all-sender-channels segment has no sender outside a campaign: nothing is in it."""
    row = await get_segment(session, segment_id)
    if is_manual(row):
        return await store.target_exists(session, segment_id, target_id)
    if row.all_sender_channels:
        return False
    table = store.users if row.type == "user" else store.channels
    key = table.c.id if row.type == "user" else table.c.cid
    query = select(literal(1)).select_from(table).where(key == target_id)
    if row.filter is not None:
        query = query.where(audience_condition(row.type, row.filter))
    return (await session.execute(query)).first() is not None
