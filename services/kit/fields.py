"""Field rules every service applies the same way: ids are 1..255 characters, and no string
holds a NUL character (PostgreSQL cannot store one, so SQLite must not accept one either)."""

from __future__ import annotations

from services.kit.errors import Violations
from services.kit.limits import MAX_CHANNEL_TYPE, MAX_ID

NUL = "\x00"


def check_id(v: Violations, value: str, field: str, *, required: bool = True, limit: int = MAX_ID) -> bool:
    """Records a violation unless `value` is a valid id (or empty and not required)."""
    if not value:
        if required:
            v.add(field, "is required")
        return not required
    return check_text(v, value, field, limit)


def check_text(v: Violations, value: str, field: str, limit: int | None = None) -> bool:
    """Records a violation unless `value` is at most `limit` characters (when given) without NUL."""
    if limit is not None and len(value) > limit:
        v.add(field, f"must be at most {limit} characters")
        return False
    return v.check(NUL not in value, field, "must not contain NUL (U+0000) characters")


def check_channel_type(v: Violations, value: str, field: str) -> bool:
    """A channel type: required, at most MAX_CHANNEL_TYPE characters, and no ':' (it separates type:id)."""
    if not check_id(v, value, field, limit=MAX_CHANNEL_TYPE):
        return False
    return v.check(":" not in value, field, "must not contain ':'")
