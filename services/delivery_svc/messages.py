"""Rules of MessageService: page campaign messages, mark channels read (stats_users_read)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.delivery.v1 import delivery_pb2
from services.delivery_svc import convert, store
from services.delivery_svc.notifier import Notifier
from services.kit.db import transaction, utcnow, write_transaction
from services.kit.errors import Violations
from services.kit.fields import check_id
from services.kit.limits import MAX_CID, MESSAGES_PAGE
from services.kit.filters import Field, FilterSpec, Kind, compile_filter
from services.kit.paging import keyset_page, parse_sort, resolve_limit

_m = store.messages
MESSAGE_FILTER = FilterSpec({
    "cid": Field(_m.c.cid),
    "created_by_campaign_id": Field(_m.c.created_by_campaign_id),
    "user_id": Field(_m.c.user_id),
    "id": Field(_m.c.id),
    "type": Field(_m.c.type),
    "created_at": Field(_m.c.created_at, Kind.DATETIME),
})
MESSAGE_SORT = {"id": _m.c.id, "created_at": _m.c.created_at}


class Messages:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], notifier: Notifier) -> None:
        self.sessions = sessions
        self.notifier = notifier

    async def query(self, filter_: dict[str, Any] | None, sort: list[Any], limit: int, next_: str,
                    prev: str) -> tuple[list[delivery_pb2.Message], str, str]:
        condition = compile_filter(MESSAGE_FILTER, filter_)
        limit = resolve_limit(limit, MESSAGES_PAGE.default, MESSAGES_PAGE.max)
        keys = parse_sort(sort, MESSAGE_SORT, default=[("id", 1)], tie_breaker="id")
        async with transaction(self.sessions) as session:
            page = await keyset_page(session, select(_m).where(condition), keys, limit=limit, next=next_, prev=prev,
                                     fingerprint_of=filter_)
        return [convert.message(row) for row in page.rows], page.next, page.prev

    async def mark_read(self, user_id: str, cid: str) -> int:
        """Marks `cid` read by `user_id`: the user counts as a reader of every campaign with a
        message there (not their own). Returns the campaign messages newly marked read."""
        v = Violations()
        check_id(v, user_id, "user_id")
        check_id(v, cid, "cid", limit=MAX_CID)
        v.raise_if_any()
        async with write_transaction(self.sessions, urgent=True) as session:
            marked, campaigns = await store.mark_read(session, user_id, cid, utcnow())
        for campaign_id in campaigns:
            self.notifier.notify(campaign_id)
        return marked
