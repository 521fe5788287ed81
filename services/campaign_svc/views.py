"""Campaigns as callers see them: the stored campaign plus what other services know.

- `users`: a keyset page of the targeted user ids, as full user objects from the directory
  (an id the directory does not know comes back with only its id: it will be skipped);
- `sender` and `segments`: looked up in the segment service;
- `stats.stats_users_read` of a finished campaign: refreshed from the delivery service, since
  reads keep coming after completion (the stored value is served when it cannot be reached).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import grpc
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from herald.campaign.v1 import campaign_pb2
from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2
from services.campaign_svc import convert, store
from services.campaign_svc.store import Status, campaign_users
from services.campaign_svc.upstream import Upstream
from services.kit.db import transaction
from services.kit.errors import Unavailable
from services.kit.limits import CAMPAIGN_USERS_PAGE
from services.kit.paging import SortKey, keyset_page, resolve_limit

log = logging.getLogger("herald.campaign.views")

USER_KEYS = [SortKey("user_id", campaign_users.c.user_id)]


class Views:
    def __init__(self, sessions: async_sessionmaker, upstream: Upstream) -> None:
        self.sessions = sessions
        self.upstream = upstream

    async def one(self, row: Mapping, *, limit: int = 0, next: str = "", prev: str = "",
                  best_effort: bool = False) -> tuple[campaign_pb2.Campaign, common_pb2.Pager]:
        """The full campaign with one page of its users, and the users' cursors.

        `best_effort` (answers to a change that was already made): when the segment service
        cannot be reached, users carry only their ids and sender / segments stay empty, rather
        than failing a call whose change went through.
        """
        limit = resolve_limit(limit, CAMPAIGN_USERS_PAGE.default, CAMPAIGN_USERS_PAGE.max)
        async with transaction(self.sessions) as session:
            page = await keyset_page(session, store.users_of(row["id"]), USER_KEYS, limit=limit, next=next,
                                     prev=prev, fingerprint_of=["campaign_users", row["id"]])
        user_ids = [r.user_id for r in page.rows]
        campaign = convert.campaign(row)
        try:
            users = await self.upstream.get_users([row["sender_id"], *user_ids])
            _fill(campaign, users, user_ids)
            await self._fill_segments([campaign])
        except Unavailable:
            if not best_effort:
                raise
            del campaign.users[:], campaign.segments[:]
            campaign.ClearField("sender")
            _fill(campaign, {}, user_ids)
        await self._refresh_reads([row], [campaign])
        return campaign, common_pb2.Pager(next=page.next, prev=page.prev)

    async def many(self, rows: Sequence[Mapping], *, user_limit: int) -> list[campaign_pb2.Campaign]:
        """Full campaigns for a query page, each with its first `user_limit` users."""
        campaigns = [convert.campaign(row) for row in rows]
        await self.complete(campaigns, user_limit=user_limit)
        await self._refresh_reads(rows, campaigns)
        return campaigns

    async def complete(self, campaigns: Sequence[campaign_pb2.Campaign], *, user_limit: int) -> None:
        """Adds what the stored campaigns lack to be whole: the sender, the segments and the
        first `user_limit` targeted users, as full objects from the directory."""
        user_ids = await self._first_users([c.id for c in campaigns if c.user_ids], user_limit)
        wanted = [c.sender_id for c in campaigns] + [u for ids in user_ids.values() for u in ids]
        users = await self.upstream.get_users(wanted) if wanted else {}
        for campaign in campaigns:
            _fill(campaign, users, user_ids.get(campaign.id, []))
        await self._fill_segments(campaigns)

    async def _first_users(self, campaign_ids: list[str], user_limit: int) -> dict[str, list[str]]:
        if not campaign_ids or user_limit <= 0:
            return {}
        # The first `user_limit` users of every campaign of the page in one query.
        rank = func.row_number().over(partition_by=campaign_users.c.campaign_id,
                                      order_by=campaign_users.c.user_id).label("rank")
        ranked = (select(campaign_users.c.campaign_id, campaign_users.c.user_id, rank)
                  .where(campaign_users.c.campaign_id.in_(campaign_ids)).subquery())
        query = (select(ranked.c.campaign_id, ranked.c.user_id).where(ranked.c.rank <= user_limit)
                 .order_by(ranked.c.campaign_id, ranked.c.user_id))
        found: dict[str, list[str]] = {}
        async with transaction(self.sessions) as session:
            for campaign_id, user_id in (await session.execute(query)).all():
                found.setdefault(campaign_id, []).append(user_id)
        return found

    async def _fill_segments(self, campaigns: Sequence[campaign_pb2.Campaign]) -> None:
        segment_ids = list(dict.fromkeys(s for c in campaigns for s in c.segment_ids))
        if not segment_ids:
            return
        segments = await self.upstream.get_segments(segment_ids)
        for campaign in campaigns:
            campaign.segments.extend(segments[s] for s in campaign.segment_ids if s in segments)

    async def _refresh_reads(self, rows: Sequence[Mapping], campaigns: Sequence[campaign_pb2.Campaign]) -> None:
        finished = [row["id"] for row in rows if row["status"] in Status.TERMINAL and row["delivery_started"]]
        if not finished:
            return
        try:
            deliveries = await self.upstream.batch_get_deliveries(finished)
        except grpc.aio.AioRpcError as exc:
            log.info("read counts not refreshed", extra={"code": str(exc.code())})
            return
        fresher: dict[str, int] = {}
        for campaign in campaigns:
            delivery = deliveries.get(campaign.id)
            if delivery is not None and delivery.stats.stats_users_read > campaign.stats.stats_users_read:
                campaign.stats.stats_users_read = delivery.stats.stats_users_read
                fresher[campaign.id] = delivery.stats.stats_users_read
        if fresher:
            async with transaction(self.sessions) as session:
                for campaign_id, count in fresher.items():
                    await store.update_fields(session, campaign_id, {"stats_users_read": count},
                                              store.campaigns.c.stats_users_read < count)


def _fill(campaign: campaign_pb2.Campaign, users: Mapping[str, directory_pb2.User], user_ids: Sequence[str]) -> None:
    if campaign.sender_id in users:
        campaign.sender.CopyFrom(users[campaign.sender_id])
    campaign.users.extend(users.get(u) or directory_pb2.User(id=u) for u in user_ids)
