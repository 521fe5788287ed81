"""Calendar months in UTC, written "YYYY-MM": the unit of the monthly message capacity.

delivery_svc counts usage per month under this key (its `monthly_usage` table); GetUsage reads
a month the caller names in the same form, checked here by both services that take it.
"""

from __future__ import annotations

import datetime as dt
import re

from services.kit.errors import Violations

_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")  # ASCII digits only (\d takes any script's)


def month_of(moment: dt.datetime) -> str:
    """The month `moment` (UTC) falls in: "2026-07"."""
    return f"{moment.year:04d}-{moment.month:02d}"


def check_month(v: Violations, value: str, field: str) -> bool:
    """Records a violation unless `value` is a month "YYYY-MM" (years 0001..9999, months
    01..12); empty passes: it means the current month."""
    if not value:
        return True
    parts = _MONTH.fullmatch(value)
    if parts is None:
        v.add(field, "must be a month written YYYY-MM (e.g. 2026-07)")
        return False
    year, month = int(parts[1]), int(parts[2])
    return (v.check(year >= 1, field, "must be a year from 0001 to 9999")
            and v.check(1 <= month <= 12, field, "must be a month from 01 to 12"))
