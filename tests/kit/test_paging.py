"""Keyset pages over a real database: walks forward with `next` to the end and back with
`prev` to the start in several orders, stays exact when rows are inserted between calls, and
rejects cursors that are garbage, altered, unsigned, signed with another secret, or were made
for another filter or sort."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
from herald.common.v1.common_pb2 import SortParam
from sqlalchemy import Column, Integer, String, Table, insert, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.kit.db import IdString, UtcDateTime, create_tables, make_engine, new_metadata
from services.kit.errors import InvalidArgument
from services.kit.filters import Field, FilterSpec, compile_filter
from services.kit.paging import SortKey, cursor_key, key_for_cursors, keyset_page, parse_sort, resolve_limit

metadata = new_metadata()
entries = Table(
    "entries", metadata,
    Column("id", IdString(), primary_key=True),
    Column("score", Integer, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("note", String(32)),
)
SORTABLE = {"id": entries.c.id, "score": entries.c.score, "kind": entries.c.kind, "created_at": entries.c.created_at}
FILTERS = FilterSpec({"kind": Field(entries.c.kind), "score": Field(entries.c.score, "number")})
BASE = dt.datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=dt.timezone.utc)


def entry(i: int, **overrides) -> dict:
    # Repeated scores, kinds and times, so that every order leans on its tie-breakers.
    row = {"id": f"e{i:02d}", "score": (i * 7) % 4, "kind": "ab"[i % 2],
           "created_at": BASE + dt.timedelta(minutes=i // 3, microseconds=i % 3), "note": None}
    return row | overrides


ENTRIES = [entry(i) for i in range(1, 14)]


@pytest.fixture
async def sessions(db_url):
    engine = make_engine(db_url)
    await create_tables(engine, metadata)
    async with engine.begin() as conn:
        await conn.execute(insert(entries), ENTRIES)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


def expected_order(rows: list[dict], keys: list[SortKey]) -> list[str]:
    ordered = list(rows)
    for key in reversed(keys):  # stable sorts, least significant key first
        ordered.sort(key=lambda row: row[key.name], reverse=key.descending)
    return [row["id"] for row in ordered]


async def page(sessions, keys, *, limit=3, next="", prev="", filter_=None):
    async with sessions() as session:
        stmt = select(entries.c.id).where(compile_filter(FILTERS, filter_))
        return await keyset_page(session, stmt, keys, limit=limit, next=next, prev=prev,
                                 fingerprint_of={"filter": filter_})


async def walk_forward(sessions, keys, next="", **kwargs) -> list:
    pages = [await page(sessions, keys, next=next, **kwargs)]
    while pages[-1].next:
        pages.append(await page(sessions, keys, next=pages[-1].next, **kwargs))
    return pages


def ids(result) -> list[str]:
    return [row.id for row in result.rows]


ORDERS = [
    [("id", 1)],
    [("id", -1)],
    [("score", -1)],
    [("created_at", -1)],
    [("score", 1), ("created_at", -1)],
    [("kind", -1), ("score", 1)],
]


@pytest.mark.parametrize("order", ORDERS, ids=str)
async def test_walks_forward_to_the_end_and_back_to_the_start(sessions, order):
    keys = parse_sort([{"field": f, "direction": d} for f, d in order], SORTABLE)
    for limit in (3, 4, 13, 20):
        forward = await walk_forward(sessions, keys, limit=limit)
        assert [i for p in forward for i in ids(p)] == expected_order(ENTRIES, keys), limit
        assert all(len(p.rows) == limit for p in forward[:-1]) and 0 < len(forward[-1].rows) <= limit
        assert forward[0].prev == "" and forward[-1].next == ""
        assert all(p.prev for p in forward[1:])

        backward = [forward[-1]]
        while backward[-1].prev:
            backward.append(await page(sessions, keys, limit=limit, prev=backward[-1].prev))
        assert [ids(p) for p in reversed(backward)] == [ids(p) for p in forward], limit
        assert all(p.next for p in backward[1:])


async def test_rows_inserted_between_pages_are_neither_repeated_nor_skipped(sessions):
    keys = parse_sort([SortParam(field="score", direction=-1)], SORTABLE)
    order = expected_order(ENTRIES, keys)
    first = await page(sessions, keys, limit=4)
    assert ids(first) == order[:4]

    cursor_row = next(row for row in ENTRIES if row["id"] == order[3])
    behind = entry(90, id="e00", score=cursor_row["score"])  # same score, sorts before: already passed
    ahead = entry(91, id="e99", score=cursor_row["score"])  # same score, sorts after: still to come
    async with sessions() as session, session.begin():
        await session.execute(insert(entries), [behind, ahead])

    rest = await walk_forward(sessions, keys, limit=4, next=first.next)
    seen = ids(first) + [i for p in rest for i in ids(p)]
    assert seen == expected_order(ENTRIES + [ahead], keys)
    assert "e00" not in seen and len(seen) == len(set(seen))


async def test_prev_from_a_later_page_sees_rows_inserted_before_it(sessions):
    keys = parse_sort([], SORTABLE)  # by id
    second = (await walk_forward(sessions, keys, limit=5))[1]
    async with sessions() as session, session.begin():
        await session.execute(insert(entries), [entry(92, id="e00a")])
    back = await page(sessions, keys, limit=5, prev=second.prev)
    assert ids(back) == ["e01", "e02", "e03", "e04", "e05"]
    assert back.prev  # e00a is now before it
    assert ids(await page(sessions, keys, limit=5, prev=back.prev)) == ["e00a"]


async def test_filtered_pages_walk_only_matching_rows(sessions):
    keys = parse_sort([{"field": "created_at", "direction": -1}], SORTABLE)
    filter_ = {"kind": "a", "score": {"$gte": 1.0}}
    pages = await walk_forward(sessions, keys, limit=2, filter_=filter_)
    matching = [row for row in ENTRIES if row["kind"] == "a" and row["score"] >= 1]
    assert [i for p in pages for i in ids(p)] == expected_order(matching, keys)


async def test_cursor_made_for_another_filter_or_sort_is_rejected(sessions):
    by_id = parse_sort([], SORTABLE)
    by_score = parse_sort([{"field": "score", "direction": 1}], SORTABLE)
    first = await page(sessions, by_id, filter_={"kind": "a"})
    second = await page(sessions, by_id, next=first.next, filter_={"kind": "a"})

    for keys, filter_, cursor, field in [
        (by_id, {"kind": "b"}, {"next": first.next}, "next"),
        (by_id, None, {"next": first.next}, "next"),
        (by_score, {"kind": "a"}, {"next": first.next}, "next"),
        (by_score, {"kind": "a"}, {"prev": second.prev}, "prev"),
        (by_id, {"kind": "a"}, {"prev": first.next}, "prev"),  # a next cursor given as prev
        (by_id, {"kind": "a"}, {"next": second.prev}, "next"),
        (by_id, {"kind": "a"}, {"next": first.next, "prev": second.prev}, "prev"),
    ]:
        with pytest.raises(InvalidArgument) as caught:
            await page(sessions, keys, filter_=filter_, **cursor)
        assert caught.value.violations[0].field == field, (keys, filter_, cursor)


def payload_of(cursor: str) -> dict:
    encoded = cursor.partition(".")[0]
    return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))


def b64(data: str | bytes) -> str:
    return base64.urlsafe_b64encode(data.encode() if isinstance(data, str) else data).rstrip(b"=").decode()


def signed(payload: str, key: bytes | None = None) -> str:
    """A cursor signed as Herald signs them, with the current call's key unless another is given."""
    key = cursor_key.get() if key is None else key
    return f"{b64(payload)}.{b64(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16])}"


def forged(cursor: str, *, sign: bool = True, **changes) -> str:
    payload = json.dumps(payload_of(cursor) | changes)
    return signed(payload) if sign else f"{b64(payload)}.{cursor.partition('.')[2]}"


async def test_garbage_cursors_are_rejected(sessions):
    keys = parse_sort([{"field": "created_at", "direction": -1}], SORTABLE)
    real = (await page(sessions, keys)).next
    for garbage in ["!!!", "abc", "é.é", ".", b64("not json"), signed("not json"), signed("[1, 2]"), signed('{"k": 1}'),
                    real[:-5], real.partition(".")[0],  # truncated; the unsigned format of before
                    forged(real, sign=False, k=[{"$dt": "2024-01-01T00:00:00Z"}, "e01"]),  # altered, old mac
                    signed(json.dumps(payload_of(real)), key_for_cursors("another deployment's secret")),
                    forged(real, k=["yesterday", "e01"]), forged(real, k=[{"$dt": "2024-01-01T00:00:00"}, "e01"]),
                    forged(real, k=[{"$dt": "2024-01-01T00:00:00Z"}, 5]), forged(real, k=["e01"]),
                    forged(real, d="sideways"), forged(real, k=[{"$dt": "0001-01-01T00:00:00Z"}, 2 ** 70])]:
        with pytest.raises(InvalidArgument) as caught:
            await page(sessions, keys, next=garbage)
        assert [(v.field, v.reason) for v in caught.value.violations] == [("next", "CURSOR_INVALID")], garbage
    assert payload_of(real)["d"] == "next" and forged(real) != real


async def test_datetime_keys_round_trip_through_the_cursor(sessions):
    keys = parse_sort([{"field": "created_at", "direction": 1}], SORTABLE)
    first = await page(sessions, keys, limit=1)
    payload = payload_of(first.next)
    assert payload["k"] == [{"$dt": ENTRIES[0]["created_at"].isoformat()}, "e01"]
    assert ids(await page(sessions, keys, limit=1, next=first.next)) == ["e02"]


async def test_empty_result_has_no_cursors(sessions):
    result = await page(sessions, parse_sort([], SORTABLE), filter_={"kind": "zzz"})
    assert result.rows == [] and result.next == "" and result.prev == ""


async def test_null_sort_key_is_a_programming_error(sessions):
    with pytest.raises(ValueError, match="NULL"):
        await page(sessions, [SortKey("note", entries.c.note), SortKey("id", entries.c.id)])


def test_resolve_limit():
    assert resolve_limit(0, 25, 100) == 25
    assert resolve_limit(None, 25, 100) == 25
    assert resolve_limit(100, 25, 100) == 100
    assert resolve_limit(1, 25, 100) == 1
    for bad in (-1, 101):
        with pytest.raises(InvalidArgument) as caught:
            resolve_limit(bad, 25, 100)
        assert caught.value.violations[0].field == "limit"
    with pytest.raises(InvalidArgument) as caught:
        resolve_limit(1001, 100, 1000, field="users.limit")
    assert caught.value.violations[0].field == "users.limit"


def test_parse_sort_defaults_and_tie_breaker():
    keys = parse_sort([], SORTABLE, default=[("created_at", -1)])
    assert [(k.name, k.descending) for k in keys] == [("created_at", True), ("id", False)]
    keys = parse_sort([SortParam(field="id", direction=-1), SortParam(field="score")], SORTABLE)
    assert [(k.name, k.descending) for k in keys] == [("id", True), ("score", False)]


@pytest.mark.parametrize("params,field", [
    ([{"field": "score", "direction": 1}, {"field": "nope", "direction": 1}], "sort[1].field"),
    ([{"field": "score", "direction": 2}], "sort[0].direction"),
    ([{"field": "score", "direction": -1}, {"field": "score", "direction": 1}], "sort[1].field"),
    ([SortParam(field="", direction=1)], "sort[0].field"),
])
def test_parse_sort_rejects(params, field):
    with pytest.raises(InvalidArgument) as caught:
        parse_sort(params, SORTABLE)
    assert caught.value.violations[0].field == field
