"""Keyset pagination behind every Query* RPC: `limit`, `next`, `prev`, `sort`; never OFFSET.

A page is ordered by its sort keys, always ending with a unique tie-breaker (the id), so the
order is total and a cursor names one exact position in it. Rows inserted or deleted between
two calls never make a page repeat or skip a row that was already on the other side of the
cursor.

Cursor format (opaque to clients): `<payload>.<mac>`, both urlsafe base64 without padding; the
payload is the JSON object `{"k": [sort-key values of the boundary row], "d": "next" | "prev",
"f": fingerprint}`, the mac its HMAC-SHA256 (16 bytes) under a key derived from the API secret
(`cursor_key`, set for each call by the server interceptor). Only cursors Herald made are read:
one altered, truncated or forged is INVALID_ARGUMENT before its payload is even parsed (so a
cursor cannot smuggle values the database cannot hold), as are cursors of the unsigned format
used before.
- `next` holds the page's last row: the following page is the rows after it.
- `prev` holds the page's first row: the preceding page is the `limit` rows before it
  (fetched in reverse order and flipped back).
- datetimes travel as `{"$dt": "<ISO 8601>"}`; other values as JSON scalars.
- the fingerprint hashes the sort and the caller's `fingerprint_of` (the filter and anything
  else that shapes the result), so a cursor used with another filter or sort, a `next` cursor
  passed as `prev`, or any garbage is INVALID_ARGUMENT on `next` / `prev`.

Sort keys must never be NULL (NULLs sort differently on SQLite and PostgreSQL, and cannot be
compared with `>`): sort on NOT NULL columns, or give `SortKey` an expression such as
`func.coalesce(col, "")`. A NULL met while making a cursor is a programming error (ValueError).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from contextvars import ContextVar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TypeDecorator, and_, bindparam, or_, select, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.types import TypeEngine

from services.kit import reasons
from services.kit.errors import InvalidArgument

NEXT, PREV = "next", "prev"

# The key that signs cursors in the current call (`key_for_cursors(api_secret)`).
cursor_key: ContextVar[bytes] = ContextVar("cursor_key", default=b"")
_MAC_BYTES = 16


def key_for_cursors(api_secret: str) -> bytes:
    """The cursor-signing key of a deployment: its own use of the API secret, not the secret."""
    return hmac.new(api_secret.encode(), b"herald cursors v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class SortKey:
    """One key of a page's order: `name` as the client says it, the SQL expression it sorts."""

    name: str
    column: ColumnElement[Any]
    descending: bool = False


@dataclass(frozen=True)
class Page:
    """One page of rows and the cursors around it ("" when there is nothing that way).

    Each row is the statement's row with the sort-key values appended as columns `_sort_0`,
    `_sort_1`, … (so `row.name` and `row._mapping` work; an ORM entity is `row[0]`).
    """

    rows: list[Row[Any]]
    next: str = ""
    prev: str = ""


def resolve_limit(limit: int | None, default: int, maximum: int, field: str = "limit") -> int:
    """The page size: 0 (or unset) is `default`; negative or above `maximum` is INVALID_ARGUMENT."""
    if not limit:
        return default
    if limit < 0 or limit > maximum:
        raise InvalidArgument(field, f"must be between 0 and {maximum}")
    return limit


def parse_sort(params: Iterable[Any], sortable: Mapping[str, ColumnElement[Any]], *,
               default: Sequence[tuple[str, int]] = (), tie_breaker: str = "id",
               field: str = "sort") -> list[SortKey]:
    """The sort keys of a request's `repeated SortParam sort` (or dicts with field/direction).

    Direction 1 or 0 is ascending, -1 descending. Without params, `default` applies
    (`[("created_at", -1)]`). The unique `tie_breaker` (ascending) ends the order unless the
    request already sorts on it. Unknown fields, repeated fields and other directions are
    INVALID_ARGUMENT on `sort[i].field` / `sort[i].direction`.
    """
    keys: list[SortKey] = []
    for i, param in enumerate(params):
        name, direction = _sort_param(param)
        if name not in sortable:
            raise InvalidArgument(f"{field}[{i}].field", f"cannot sort on {name!r}; sort on {', '.join(sortable)}")
        if any(key.name == name for key in keys):
            raise InvalidArgument(f"{field}[{i}].field", f"{name!r} is sorted on twice")
        if direction not in (0, 1, -1):
            raise InvalidArgument(f"{field}[{i}].direction", "must be 1 (ascending) or -1 (descending)")
        keys.append(SortKey(name, sortable[name], descending=direction == -1))
    if not keys:
        keys = [SortKey(name, sortable[name], descending=direction == -1) for name, direction in default]
    if all(key.name != tie_breaker for key in keys):
        keys.append(SortKey(tie_breaker, sortable[tie_breaker]))
    return keys


def _sort_param(param: Any) -> tuple[str, int]:
    if isinstance(param, Mapping):
        return str(param.get("field", "")), param.get("direction", 0)
    return param.field, param.direction


async def keyset_page(session: AsyncSession, stmt: Select[Any], sort_keys: Sequence[SortKey], *,
                      limit: int, next: str = "", prev: str = "", fingerprint_of: Any = None) -> Page:
    """One page of `stmt` (a SELECT with the query's WHERE, no ORDER BY / LIMIT) in `sort_keys` order.

    `limit` is already resolved (see `resolve_limit`). `next` / `prev` are the request's cursors
    (at most one). `fingerprint_of` is any JSON-able value naming what else shapes the result
    (the filter, a parent id); cursors are only accepted back with the same value and sort.
    """
    if next and prev:
        raise InvalidArgument(PREV, "give next or prev, not both")
    fingerprint = _fingerprint(sort_keys, fingerprint_of)
    stmt = stmt.order_by(None)  # the page's order is the sort keys', whatever the caller left
    keyed = stmt.add_columns(*(key.column.label(f"_sort_{i}") for i, key in enumerate(sort_keys)))
    if prev:
        before = _decode(prev, PREV, fingerprint, sort_keys)
        return await _page_before(session, stmt, keyed, sort_keys, before, limit, fingerprint)
    after = _decode(next, NEXT, fingerprint, sort_keys) if next else None
    return await _page_after(session, stmt, keyed, sort_keys, after, limit, fingerprint)


async def _page_after(session: AsyncSession, stmt: Select[Any], keyed: Select[Any], keys: Sequence[SortKey],
                      after: list[Any] | None, limit: int, fingerprint: str) -> Page:
    if after is not None:
        keyed = keyed.where(_beyond(keys, after, forward=True))
    rows = list((await session.execute(keyed.order_by(*_order(keys, forward=True)).limit(limit + 1))).all())
    more, rows = len(rows) > limit, rows[:limit]
    if not rows:
        return Page(rows)
    # The first page has nothing before it; a later one asks, as rows may have been deleted.
    earlier = after is not None and await _any_beyond(session, stmt, keys, _values(rows[0], keys), forward=False)
    return Page(rows,
                next=_encode(rows[-1], keys, NEXT, fingerprint) if more else "",
                prev=_encode(rows[0], keys, PREV, fingerprint) if earlier else "")


async def _page_before(session: AsyncSession, stmt: Select[Any], keyed: Select[Any], keys: Sequence[SortKey],
                       before: list[Any], limit: int, fingerprint: str) -> Page:
    keyed = keyed.where(_beyond(keys, before, forward=False))
    rows = list((await session.execute(keyed.order_by(*_order(keys, forward=False)).limit(limit + 1))).all())
    more, rows = len(rows) > limit, rows[:limit][::-1]
    if not rows:
        return Page(rows)
    later = await _any_beyond(session, stmt, keys, _values(rows[-1], keys), forward=True)
    return Page(rows,
                next=_encode(rows[-1], keys, NEXT, fingerprint) if later else "",
                prev=_encode(rows[0], keys, PREV, fingerprint) if more else "")


async def _any_beyond(session: AsyncSession, stmt: Select[Any], keys: Sequence[SortKey],
                      values: list[Any], *, forward: bool) -> bool:
    return bool(await session.scalar(select(stmt.where(_beyond(keys, values, forward=forward)).exists())))


def _beyond(keys: Sequence[SortKey], values: Sequence[Any], *, forward: bool) -> ColumnElement[bool]:
    """Rows strictly after (`forward`) or before the position `values` in the keys' order."""
    bound = [bindparam(None, value, type_=key.column.type) for key, value in zip(keys, values)]
    ups = [key.descending == forward for key in keys]  # True: the key must be smaller
    if len(set(ups)) == 1:
        # One direction for all keys: a row-value comparison, which indexes serve directly.
        columns, right = tuple_(*(key.column for key in keys)), tuple_(*bound)
        return columns < right if ups[0] else columns > right
    # Mixed directions: (k1 beyond v1) OR (k1 = v1 AND k2 beyond v2) OR …
    return or_(*(
        and_(*(keys[j].column == bound[j] for j in range(i)),
             keys[i].column < bound[i] if ups[i] else keys[i].column > bound[i])
        for i in range(len(keys))
    ))


def _order(keys: Sequence[SortKey], *, forward: bool) -> list[ColumnElement[Any]]:
    return [key.column.desc() if key.descending == forward else key.column.asc() for key in keys]


def _values(row: Row[Any], keys: Sequence[SortKey]) -> list[Any]:
    return [row._mapping[f"_sort_{i}"] for i in range(len(keys))]


# ---------------------------------------------------------------------------------------------
# Cursors


def _fingerprint(keys: Sequence[SortKey], fingerprint_of: Any) -> str:
    shape = {"sort": [[key.name, key.descending] for key in keys], "of": fingerprint_of}
    canonical = json.dumps(shape, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


def _encode(row: Row[Any], keys: Sequence[SortKey], direction: str, fingerprint: str) -> str:
    values = [_to_json(key, value) for key, value in zip(keys, _values(row, keys))]
    payload = json.dumps({"k": values, "d": direction, "f": fingerprint}, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_mac(payload))}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(payload: bytes) -> bytes:
    return hmac.new(cursor_key.get(), payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _signed_payload(cursor: str) -> bytes:
    """The payload of a cursor this deployment signed; ValueError for any other string."""
    encoded, _, mac = cursor.partition(".")
    payload = _unb64(encoded)
    if not hmac.compare_digest(_unb64(mac), _mac(payload)):
        raise ValueError("not signed by this deployment")
    return payload


def _to_json(key: SortKey, value: Any) -> Any:
    if value is None:
        raise ValueError(f"sort key {key.name!r} is NULL; sort on NOT NULL expressions (coalesce nullable ones)")
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    return value


def _decode(cursor: str, field: str, fingerprint: str, keys: Sequence[SortKey]) -> list[Any]:
    try:
        payload = json.loads(_signed_payload(cursor))
        values, direction, made_for = payload["k"], payload["d"], payload["f"]
        if direction not in (NEXT, PREV):
            raise ValueError(direction)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, KeyError):
        raise InvalidArgument(field, "is not a valid cursor", reason=reasons.CURSOR_INVALID) from None
    if made_for != fingerprint:
        raise InvalidArgument(field, "was made for a different filter or sort; start again without it",
                              reason=reasons.CURSOR_INVALID)
    if direction != field:
        raise InvalidArgument(field, f"is a {direction} cursor; pass it as {direction}", reason=reasons.CURSOR_INVALID)
    try:
        return [_from_json(key, value) for key, value in zip(keys, values, strict=True)]
    except (ValueError, TypeError):
        raise InvalidArgument(field, "is not a valid cursor", reason=reasons.CURSOR_INVALID) from None


def _from_json(key: SortKey, value: Any) -> Any:
    """The cursor's value for `key`, checked against the column's type (cursors are client input)."""
    if isinstance(value, dict) and set(value) == {"$dt"} and isinstance(value["$dt"], str):
        value = dt.datetime.fromisoformat(value["$dt"])
        if value.tzinfo is None:
            raise TypeError(f"{key.name} has no time zone")
    expected = _python_type(key.column.type)
    if expected is None:
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        raise TypeError(f"{key.name} is not a {expected.__name__}")
    return value


def _python_type(column_type: TypeEngine[Any]) -> type | None:
    if isinstance(column_type, TypeDecorator):  # e.g. UtcDateTime: values are its impl's
        column_type = column_type.impl_instance
    try:
        return column_type.python_type
    except NotImplementedError:
        return None
