"""Rules of DeliveryService.GetUsage: a month's messages against the monthly capacity.

The count is the month's `monthly_usage` row, which each batch's transaction adds to with
exactly the messages it writes (writer.py) — unlimited capacity or not — so it never runs
ahead of or behind the messages stored, whatever crashed, and reading it costs one row.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.delivery_svc import store
from services.kit.db import transaction, utcnow
from services.kit.errors import Violations
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
