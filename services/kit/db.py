"""Database engine and sessions: one engine per process, built by the composition root.

SQLite (the default) runs in WAL mode with a busy timeout and foreign keys on; PostgreSQL
(`postgresql+asyncpg://`) runs the same code. Ids compare by their bytes on both backends:
SQLite's default BINARY collation, and `COLLATE "C"` on PostgreSQL (see `IdString`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from sqlalchemy import JSON, DateTime, Dialect, MetaData, String, Table, TypeDecorator, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from services.kit.limits import MAX_ID

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def IdString(length: int = MAX_ID) -> String:
    """A string column that sorts by bytes on every backend."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


# Free-form JSON: JSONB on PostgreSQL (indexable, `?` for key existence), JSON text on SQLite.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def dialect_insert(session: AsyncSession, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The backend's INSERT for `table`, which has ON CONFLICT DO NOTHING / DO UPDATE."""
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


def rows_changed(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched (its result is a CursorResult, which
    `AsyncSession.execute` is not typed to say)."""
    return cast(CursorResult[Any], result).rowcount


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Builds the process's engine; SQLite gets WAL, a busy timeout and foreign keys."""
    if is_sqlite(url):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_async_engine(url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def create_tables(engine: AsyncEngine, metadata: MetaData) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One RPC, one transaction: commits on success, rolls back on any exception."""
    async with sessions() as session, session.begin():
        yield session


class WriterTurns:
    """SQLite's one writer, taken in turns by this process's writers: in the order they came,
    except that an urgent writer (a caller is waiting on its answer, e.g. StartCampaign) goes
    before the queued background ones (a campaign's progress, a delivery's batches)."""

    def __init__(self) -> None:
        self._held = False
        self._queue: list[tuple[int, int, asyncio.Future[None]]] = []  # (lane, arrival, waiter)
        self._arrivals = itertools.count()

    @asynccontextmanager
    async def turn(self, *, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if not self._held:  # free: nobody is queued either (a release hands over or empties the queue)
            self._held = True
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, (0 if urgent else 1, next(self._arrivals), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the turn came as this writer was cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._queue:
            _, _, waiter = heapq.heappop(self._queue)
            if not waiter.done():  # a cancelled waiter stays queued until here
                waiter.set_result(None)
                return
        self._held = False


_writers: weakref.WeakKeyDictionary[AsyncEngine, WriterTurns] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def write_transaction(sessions: async_sessionmaker[AsyncSession], *,
                            urgent: bool = False) -> AsyncIterator[AsyncSession]:
    """A transaction that writes. SQLite has one writer at a time, and a connection that finds
    it taken sleeps in SQLite's busy handler — 1, 2, 5, 10, … up to 100 ms — however soon it is
    free again, so a writer meeting a stream of others may wait for seconds: this process's
    writers take turns instead (WriterTurns), each woken as the one before commits, `urgent`
    ones first. Never nest one in another (a turn is not reentrant)."""
    engine = sessions.kw["bind"]
    if engine.dialect.name != "sqlite":
        async with transaction(sessions) as session:
            yield session
        return
    turns = _writers.get(engine)
    if turns is None:
        turns = _writers[engine] = WriterTurns()
    async with turns.turn(urgent=urgent), transaction(sessions) as session:
        yield session
