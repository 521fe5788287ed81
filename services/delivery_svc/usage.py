"""Rules of DeliveryService.GetUsage: a month's messages against the monthly capacity.

The count is the month's `monthly_usage` row, which each batch's transaction adds to with
exactly the messages it writes (writer.py) — unlimited capacity or not — so it never runs
ahead of or behind the messages stored, whatever crashed, and reading it costs one row.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.delivery_svc import reasons, store
from services.kit.db import transaction, utcnow
from services.kit.errors import ResourceExhausted, Violations
from services.kit.months import check_month, month_of


class MonthlyUsage(NamedTuple):
    """A month's messages and the capacity they count against (0 = unlimited)."""

    month: str
    messages_sent: int
    capacity: int

    @property
    def remaining(self) -> int | None:
        """What the month has left (never negative: the capacity may have been lowered since);
        None when unlimited."""
        return max(0, self.capacity - self.messages_sent) if self.capacity > 0 else None


class Usage:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, monthly_capacity: int) -> None:
        self.sessions = sessions
        self.monthly_capacity = max(0, monthly_capacity)

    async def of_month(self, month: str) -> MonthlyUsage:
        """The usage of `month` ("YYYY-MM"; empty: the current UTC month, as batches count it)."""
        v = Violations()
        check_month(v, month, "month")
        v.raise_if_any()
        month = month or month_of(utcnow())
        async with transaction(self.sessions) as session:
            sent = await store.messages_in_month(session, month)
        return MonthlyUsage(month, sent, self.monthly_capacity)


async def check_room(session: AsyncSession, capacity: int, messages: int = 1) -> None:
    """RESOURCE_EXHAUSTED (CAPACITY_EXHAUSTED, with the start of next month as the retry delay)
    unless this month has room for `messages` more within `capacity` (0: unlimited)."""
    if capacity <= 0:
        return
    now = utcnow()
    if await store.messages_this_month(session, now) + messages > capacity:
        raise capacity_exhausted(capacity, now)


def capacity_exhausted(capacity: int, now: dt.datetime) -> ResourceExhausted:
    """The error of a month without room: retry when the next one starts."""
    next_month = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=32)).replace(day=1)
    return ResourceExhausted(f"the monthly message capacity of {capacity} is used up",
                             reason=reasons.CAPACITY_EXHAUSTED, retry_after_s=(next_month - now).total_seconds())
