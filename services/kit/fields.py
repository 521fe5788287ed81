"""Field rules every service applies the same way: ids are 1..255 characters, and no string
holds a NUL character (PostgreSQL cannot store one, so SQLite must not accept one either)."""

from __future__ import annotations

from services.kit.errors import Violations

MAX_ID = 255
NUL = "\x00"


def check_id(v: Violations, value: str, field: str, *, required: bool = True, limit: int = MAX_ID) -> bool:
    """Records a violation unless `value` is a valid id (or empty and not required)."""
    if not value:
        if required:
            v.add(field, "is required")
        return not required
    return check_text(v, value, field, limit)


def check_text(v: Violations, value: str, field: str, limit: int) -> bool:
    """Records a violation unless `value` is at most `limit` characters without NUL."""
    if len(value) > limit:
        v.add(field, f"must be at most {limit} characters")
        return False
    return v.check(NUL not in value, field, "must not contain NUL (U+0000) characters")
