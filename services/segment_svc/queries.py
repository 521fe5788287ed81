"""The Query* RPCs: filter (services.kit.filters) + keyset pages (services.kit.paging)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from herald.segment.v1 import directory_pb2, directory_service_pb2, segment_pb2, segment_service_pb2
from services.kit.filters import FilterSpec, compile_filter, request_filter
from services.kit.limits import CHANNELS_PAGE, SEGMENTS_PAGE, TARGETS_PAGE, USERS_PAGE, PageLimit
from services.kit.paging import Page, SortKey, keyset_page, parse_sort, resolve_limit
from services.segment_svc import filters, segments, store
from services.segment_svc.convert import channel_message, target_message, user_from_row

USER_SORT = {name: store.users.c[name] for name in ("id", "name", "role", "created_at", "updated_at")}
CHANNEL_SORT = {name: store.channels.c[name] for name in ("cid", "type", "id", "team", "created_by_id",
                                                           "created_at", "updated_at")}
SEGMENT_SORT = {name: store.segments.c[name] for name in ("id", "name", "type", "size", "created_at",
                                                           "updated_at")}
TARGET_SORT = {"target_id": store.segment_targets.c.target_id}

_QueryRequest = (directory_service_pb2.QueryUsersRequest | directory_service_pb2.QueryChannelsRequest
                 | segment_service_pb2.QuerySegmentsRequest | segment_service_pb2.QuerySegmentTargetsRequest)


def _filter(request: _QueryRequest, spec: FilterSpec) -> tuple[ColumnElement[bool], dict | None]:
    value = request_filter(request)
    return compile_filter(spec, value or None), value


async def _page(session: AsyncSession, request: _QueryRequest, stmt: Select[Any], sort: list[SortKey], *,
                page_limit: PageLimit, fingerprint: Any) -> Page:
    limit = resolve_limit(request.limit, page_limit.default, page_limit.max)
    return await keyset_page(session, stmt, sort, limit=limit, next=request.next, prev=request.prev,
                             fingerprint_of=fingerprint)


async def query_users(session: AsyncSession,
                      request: directory_service_pb2.QueryUsersRequest) -> tuple[list[directory_pb2.User], Page]:
    condition, value = _filter(request, filters.USERS)
    sort = parse_sort(request.sort, USER_SORT, default=[("id", 1)])
    users = store.users
    stmt = select(users.c.doc, users.c.created_at, users.c.updated_at).where(condition)
    page = await _page(session, request, stmt, sort, page_limit=USERS_PAGE, fingerprint=value)
    return [user_from_row(row.doc, row.created_at, row.updated_at) for row in page.rows], page


async def query_channels(session: AsyncSession, request: directory_service_pb2.QueryChannelsRequest,
                         ) -> tuple[list[directory_pb2.Channel], Page]:
    condition, value = _filter(request, filters.CHANNELS)
    sort = parse_sort(request.sort, CHANNEL_SORT, default=[("cid", 1)], tie_breaker="cid")
    stmt = select(*store.CHANNEL_COLUMNS).where(condition)
    page = await _page(session, request, stmt, sort, page_limit=CHANNELS_PAGE, fingerprint=value)
    members = await store.members_of(session, [row.cid for row in page.rows])
    return [channel_message(row._mapping, (m._mapping for m in members[row.cid])) for row in page.rows], page


async def query_segments(session: AsyncSession,
                         request: segment_service_pb2.QuerySegmentsRequest) -> tuple[list[Row[Any]], Page]:
    condition, value = _filter(request, filters.SEGMENTS)
    sort = parse_sort(request.sort, SEGMENT_SORT, default=[("created_at", -1)])
    stmt = select(store.segments).where(condition)
    page = await _page(session, request, stmt, sort, page_limit=SEGMENTS_PAGE, fingerprint=value)
    return page.rows, page


async def query_targets(session: AsyncSession, request: segment_service_pb2.QuerySegmentTargetsRequest,
                        ) -> tuple[list[segment_pb2.SegmentTarget], Page]:
    """A segment's manual targets ordered by target_id (filter/all-users segments have none)."""
    await segments.get_segment(session, request.id)
    condition, value = _filter(request, filters.TARGETS)
    sort = parse_sort(request.sort, TARGET_SORT, default=[("target_id", 1)], tie_breaker="target_id")
    targets = store.segment_targets
    stmt = (select(targets.c.target_id, targets.c.created_at)
            .where(targets.c.segment_id == request.id, condition))
    page = await _page(session, request, stmt, sort, page_limit=TARGETS_PAGE,
                       fingerprint={"id": request.id, "filter": value})
    return [target_message(request.id, row._mapping) for row in page.rows], page
