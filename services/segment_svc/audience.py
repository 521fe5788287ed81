"""The audience of a campaign: segments or user ids → deduplicated targets, ordered by id.

StreamRecipients walks the audience by keyset: each batch asks for the next `batch_size`
distinct target ids after the cursor over the union of the segments' id sources (filter →
users/channels matching it, all_users → users, all_sender_channels → the sender's
memberships, manual → segment_targets), joined to the rows in the same query. Nothing is
held between batches but the cursor, so memory does not grow with the audience; each batch
reads in its own short transaction (users added behind the cursor are not included).

The cursor is the last target id a batch covered, skipped ids included: resuming after it
yields exactly the rest.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import Select

from herald.segment.v1 import segment_pb2, segment_service_pb2
from services.kit.db import transaction
from services.kit.errors import InvalidArgument, NotFound
from services.segment_svc import reasons, store
from services.segment_svc.convert import channel_message
from services.segment_svc.filters import audience_condition


@dataclass
class Audience:
    """Where an audience's target ids come from; `user_ids` (sorted) when given directly."""

    kind: str  # "user" | "channel"
    sources: list[Select] = field(default_factory=list)
    user_ids: list[str] | None = None
    exclude: str | None = None  # the sender, left out of user audiences


async def resolve(session: AsyncSession, segment_ids: Sequence[str], user_ids: Sequence[str],
                  sender_id: str) -> Audience:
    """The audience of a validated request (exactly one of segment_ids / user_ids)."""
    if user_ids:
        return Audience("user", user_ids=sorted(set(user_ids) - {sender_id}))
    wanted = list(dict.fromkeys(segment_ids))
    found = await store.segments_by_ids(session, wanted)
    missing = [s for s in wanted if s not in found]
    if missing:
        raise NotFound(f"segment(s) not found: {', '.join(missing[:10])}", reason=reasons.SEGMENT_NOT_FOUND,
                       metadata={"field": "segment_ids"})
    rows = [found[s] for s in wanted]
    kinds = {row.type for row in rows}
    if len(kinds) > 1:
        raise InvalidArgument("segment_ids", "segments must all be of one type (user or channel segments)",
                              reason=reasons.SEGMENT_TYPE_MISMATCH)
    kind = kinds.pop()
    if kind == "user":
        return Audience("user", _user_sources(rows), exclude=sender_id or None)
    if any(row.all_sender_channels for row in rows) and not sender_id:
        raise InvalidArgument("sender_id", "is required for all_sender_channels segments")
    return Audience("channel", _channel_sources(rows, sender_id))


def _user_sources(rows: list) -> list[Select]:
    manual = [store.manual_target_ids(row.id) for row in rows if row.filter is None and not row.all_users]
    if any(row.all_users for row in rows):
        return [store.user_ids_matching(None), *manual]  # every user: filters add nothing
    filters = [row for row in rows if row.filter is not None]
    if filters:
        condition = or_(*(audience_condition("user", row.filter) for row in filters))
        manual.insert(0, store.user_ids_matching(condition))
    return manual


def _channel_sources(rows: list, sender_id: str) -> list[Select]:
    sources = [store.manual_target_ids(row.id) for row in rows
               if row.filter is None and not row.all_sender_channels]
    filters = [row for row in rows if row.filter is not None]
    if filters:
        sources.insert(0, store.channel_cids_matching(
            or_(*(audience_condition("channel", row.filter) for row in filters))))
    if any(row.all_sender_channels for row in rows):
        sources.insert(0, store.sender_channel_cids(sender_id))
    return sources


async def count(session: AsyncSession, audience: Audience) -> int:
    if audience.user_ids is not None:
        return len(audience.user_ids)
    return await store.count_rows(session, store.audience_ids(audience.sources, audience.exclude))


async def split(session: AsyncSession, audience: Audience, parts: int) -> list[str]:
    """Boundaries cutting the audience into `parts` near-equal ranges of ids: the last id of
    each range but the last (fewer when the audience is smaller than `parts`)."""
    if audience.user_ids is not None:
        ids = audience.user_ids
        step = -(-len(ids) // parts)
        return ids[step - 1:-1:step] if step else []
    total = await count(session, audience)
    step = -(-total // parts)
    if step == 0:
        return []
    ends = await store.every_nth_id(session, store.audience_ids(audience.sources, audience.exclude), step)
    return ends[:parts - 1] if len(ends) * step < total else ends[:-1][:parts - 1]


async def stream(sessions: async_sessionmaker[AsyncSession], audience: Audience, cursor: str,
                 batch_size: int, last: str = "") -> AsyncIterator[segment_service_pb2.StreamRecipientsResponse]:
    """Batches of recipients after `cursor` (through `last` when given), each covering
    `batch_size` target ids.

    The next batch is read while the current one is being sent (SQLite works in its own
    thread), so at most two batches are in memory.
    """

    async def read(after: str) -> _Batch | None:
        async with transaction(sessions) as session:
            return await _next_batch(session, audience, after, batch_size, last)

    pending: asyncio.Task | None = asyncio.create_task(read(cursor))
    try:
        while pending is not None:
            batch = await pending
            pending = None
            if batch is None:
                return
            if batch.covered == batch_size:
                pending = asyncio.create_task(read(batch.response.cursor))
            yield batch.response
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


@dataclass
class _Batch:
    response: segment_service_pb2.StreamRecipientsResponse
    covered: int  # target ids the batch covered, skipped ones included


async def _next_batch(session: AsyncSession, audience: Audience, cursor: str, limit: int, last: str) -> _Batch | None:
    if audience.user_ids is not None:
        start = bisect.bisect_right(audience.user_ids, cursor) if cursor else 0
        end = bisect.bisect_right(audience.user_ids, last) if last else len(audience.user_ids)
        ids = audience.user_ids[start:min(start + limit, end)]
        if not ids:
            return None
        docs = {row.id: row.doc for row in await store.users_by_ids(session, ids)}
        pairs = [(i, docs.get(i)) for i in ids]
        return _Batch(user_batch(pairs), len(pairs))
    page = store.next_target_ids(audience.sources, cursor, limit, audience.exclude, last)
    if audience.kind == "user":
        pairs = [(row[0], row[1]) for row in await session.execute(store.user_docs_for(page))]
        return _Batch(user_batch(pairs), len(pairs)) if pairs else None
    rows = list(await session.execute(store.channel_rows_for(page)))
    if not rows:
        return None
    return _Batch(await _channel_batch(session, rows), len(rows))


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SHORT = [bytes((n,)) for n in range(0x80)]  # one-byte varints, the common case for lengths


def _length(n: int) -> bytes:
    return _SHORT[n] if n < 0x80 else _varint(n)


# target_type = SEGMENT_TYPE_USER: field 4, wire type 0 (varint) → tag 0x20, then the value.
_USER_TARGETS = b"\x20" + _varint(segment_pb2.SEGMENT_TYPE_USER)


def user_batch(pairs: list[tuple[str, bytes | None]]) -> segment_service_pb2.StreamRecipientsResponse:
    """A batch of user recipients from (target id, stored User bytes or None when unknown).

    The stored bytes are spliced into the encoded response (Recipient.target_id = 1,
    Recipient.user = 2; response recipients = 1, skipped_ids = 2, cursor = 3, target_type = 4)
    and parsed once in C, instead of building a message per user in Python.
    """
    parts = []
    skipped = []
    for target_id, doc in pairs:
        encoded_id = target_id.encode()
        if doc is None:
            skipped.append(b"\x12" + _length(len(encoded_id)) + encoded_id)
            continue
        recipient = b"".join((b"\x0a", _length(len(encoded_id)), encoded_id, b"\x12", _length(len(doc)), doc))
        parts.append(b"\x0a" + _length(len(recipient)) + recipient)
    parts.extend(skipped)
    cursor = pairs[-1][0].encode()
    parts.append(b"\x1a" + _length(len(cursor)) + cursor)
    parts.append(_USER_TARGETS)
    return segment_service_pb2.StreamRecipientsResponse.FromString(b"".join(parts))


async def _channel_batch(session: AsyncSession, rows: list) -> segment_service_pb2.StreamRecipientsResponse:
    found = [row for row in rows if row.cid is not None]
    members = await store.members_of(session, [row.cid for row in found])
    response = segment_service_pb2.StreamRecipientsResponse(cursor=rows[-1].target_id,
                                                           target_type=segment_pb2.SEGMENT_TYPE_CHANNEL)
    for row in rows:
        if row.cid is None:
            response.skipped_ids.append(row.target_id)
            continue
        recipient = response.recipients.add(target_id=row.cid)
        channel_message(row._mapping, (m._mapping for m in members[row.cid]), full=False, into=recipient.channel)
    return response
