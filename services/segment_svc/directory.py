"""Who exists: users, channels and their members (the logic behind DirectoryService)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from herald.segment.v1 import directory_pb2
from services.kit.db import utcnow
from services.segment_svc import store
from services.segment_svc.convert import channel_message, channel_row, member_row, user_from_row, user_row


# ---------------------------------------------------------------------------------------------
# Users

async def store_users(session: AsyncSession, users: Sequence[directory_pb2.User]) -> list[str]:
    """Creates or replaces users (the last of a repeated id wins); returns the ids, deduplicated."""
    now = utcnow()
    rows = {user.id: user_row(user, now) for user in users}
    await store.upsert_users(session, list(rows.values()))
    await store.mark_sizes_dirty(session, "user")
    return list(rows)


async def upsert_users(session: AsyncSession, users: Sequence[directory_pb2.User]) -> list[directory_pb2.User]:
    ids = await store_users(session, users)
    stored = await get_users(session, ids)
    return [stored[i] for i in ids]


async def get_users(session: AsyncSession, ids: Sequence[str]) -> dict[str, directory_pb2.User]:
    """The existing users among `ids`, by id, in id order."""
    return {row.id: user_from_row(row.doc, row.created_at, row.updated_at)
            for row in await store.users_by_ids(session, ids)}


async def delete_users(session: AsyncSession, ids: Sequence[str]) -> int:
    """Deletes users, their channel memberships and their devices; manual segment targets keep
    the ids (a target that is no longer a user is skipped when sending)."""
    ids = list(dict.fromkeys(ids))
    deleted = await store.delete_users(session, ids)
    await store.delete_devices_of_users(session, ids)
    if deleted:
        await store.mark_sizes_dirty(session, "user")
    if await store.delete_memberships(session, ids):
        await store.mark_sizes_dirty(session, "channel")  # a `members` filter may match fewer channels
    return deleted


# ---------------------------------------------------------------------------------------------
# Channels

async def upsert_channels(session: AsyncSession,
                          channels: Sequence[directory_pb2.Channel]) -> list[directory_pb2.Channel]:
    """Creates or replaces channels and their member lists. An existing channel keeps its
    creator and creation time, and a member that stays keeps its `created_at`."""
    now = utcnow()
    rows = {}
    members: dict[str, dict[str, dict]] = {}
    for channel in channels:
        row = channel_row(channel, now)
        rows[row["cid"]] = row
        members[row["cid"]] = {m.user_id: member_row(row["cid"], m, now) for m in channel.members}
    cids = list(rows)
    before = await store.members_of(session, cids)
    for cid, existing in before.items():
        for old in existing:
            if old.user_id in members[cid]:
                members[cid][old.user_id]["created_at"] = old.created_at
    await store.upsert_channels(session, list(rows.values()))
    await store.replace_members(session, cids, [m for by_user in members.values() for m in by_user.values()])
    await store.mark_sizes_dirty(session, "channel")
    return await load_channels(session, cids)


async def load_channels(session: AsyncSession, cids: Sequence[str]) -> list[directory_pb2.Channel]:
    """Channels with their members (two queries), in the order of `cids`; unknown ones left out."""
    rows = await store.channels_by_cids(session, cids)
    members = await store.members_of(session, rows)
    return [channel_message(rows[cid]._mapping, (m._mapping for m in members[cid])) for cid in cids if cid in rows]
