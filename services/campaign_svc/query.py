"""QueryCampaigns: the filter fields of DESIGN §6, sort on any of them, keyset pages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, RowMapping, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import ColumnElement

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2
from services.campaign_svc.store import campaign_segments, campaigns
from services.kit.db import transaction
from services.kit.filters import Field, FilterSpec, Kind, compile_filter, enum_aliases, in_list, request_filter
from services.kit.limits import CAMPAIGNS_PAGE, MAX_MESSAGE_BYTES, QUERY_CAMPAIGN_USERS
from services.kit.paging import Page, keyset_page, parse_sort, resolve_limit

# A page stays well under the message cap: campaigns carry up to 10,000 user ids each.
RESPONSE_BUDGET_BYTES = MAX_MESSAGE_BYTES * 3 // 4
USER_OBJECT_BYTES = 1024  # an embedded user (user_limit), generously


def _segments_condition(op: str, value: Any) -> ColumnElement[bool]:
    """`segments` holds a segment id ($eq / $contains), one of several ($in), or any ($exists)."""
    linked = campaign_segments.c.campaign_id == campaigns.c.id
    if op == "$exists":
        return exists().where(linked)
    if op == "$in":
        return exists().where(linked, in_list(campaign_segments.c.segment_id, value))
    return exists().where(linked, campaign_segments.c.segment_id == value)


FILTER = FilterSpec(fields={
    "id": Field(campaigns.c.id),
    "name": Field(campaigns.c.name),
    "sender_id": Field(campaigns.c.sender_id),
    "status": Field(campaigns.c.status, Kind.ENUM, values=enum_aliases(campaign_pb2.CampaignStatus)),
    "segments": Field(kind=Kind.ARRAY_OF_STRINGS, compile=_segments_condition),
    "created_at": Field(campaigns.c.created_at, Kind.DATETIME),
    "updated_at": Field(campaigns.c.updated_at, Kind.DATETIME),
})

SORTABLE = {name: field.column for name, field in FILTER.fields.items() if field.column is not None}


async def query_campaigns(sessions: async_sessionmaker[AsyncSession],
                          request: campaign_service_pb2.QueryCampaignsRequest) -> tuple[list[RowMapping], str, str]:
    """One page of campaign rows and its next / prev cursors."""
    limit = resolve_limit(request.limit, CAMPAIGNS_PAGE.default, CAMPAIGNS_PAGE.max)
    filter_dict = request_filter(request)
    condition = compile_filter(FILTER, filter_dict)
    sort = parse_sort(request.sort, SORTABLE, default=[("created_at", -1)])
    user_limit = resolve_limit(request.user_limit, QUERY_CAMPAIGN_USERS.default, QUERY_CAMPAIGN_USERS.max,
                               "user_limit")
    async with transaction(sessions) as session:
        async def page_of(size: int) -> Page:
            return await keyset_page(session, select(campaigns).where(condition), sort, limit=size,
                                     next=request.next, prev=request.prev, fingerprint_of=filter_dict)

        page = await page_of(limit)
        # A prev page ends at its cursor: a shorter one keeps the rows nearest to it.
        fitting = _fitting(page.rows[::-1] if request.prev else page.rows, user_limit)
        if fitting < len(page.rows):  # a shorter page, with cursors that continue from it
            page = await page_of(fitting)
    rows = [row._mapping for row in page.rows]
    return rows, page.next, page.prev


def _fitting(rows: Sequence[Row[Any]], user_limit: int) -> int:
    """How many of the rows (in order) fit the response budget; at least one."""
    used = 0
    for count, row in enumerate(rows):
        used += 2048 + sum(len(u) + 4 for u in row.user_ids) + user_limit * USER_OBJECT_BYTES
        if used > RESPONSE_BUDGET_BYTES:
            return max(1, count)
    return len(rows)
