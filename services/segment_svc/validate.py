"""Input rules shared by the segment service's handlers (limits from DESIGN §4–7)."""

from __future__ import annotations

from collections.abc import Sequence

from services.kit.errors import Violations

MAX_ID = 255
MAX_CHANNEL_TYPE = 64
MAX_CID = MAX_CHANNEL_TYPE + 1 + MAX_ID
MAX_TEAM = 1000
MAX_USERS_PER_CALL = 10_000
MAX_CHANNELS_PER_CALL = 1_000
MAX_MEMBERS_PER_SPEC = 1_000
MAX_ENSURE_SPECS = 10_000
MAX_TARGETS_PER_CALL = 10_000
MAX_SEGMENTS_PER_AUDIENCE = 25
MAX_SEGMENT_NAME = 128
MAX_SEGMENT_DESCRIPTION = 256
DEFAULT_BATCH = 1_000
MAX_BATCH = 10_000


def check_id(v: Violations, value: str, field: str, *, required: bool = True, limit: int = MAX_ID) -> bool:
    if not value:
        if required:
            v.add(field, "is required")
        return not required
    return v.check(len(value) <= limit, field, f"must be at most {limit} characters")


def check_id_list(v: Violations, values: Sequence[str], field: str, *, limit: int,
                  item_limit: int = MAX_ID, required: bool = True) -> bool:
    """1..limit ids, each non-empty and at most item_limit characters (first bad item named)."""
    if not values:
        if required:
            v.add(field, "must list at least one id")
        return False
    if len(values) > limit:
        v.add(field, f"must list at most {limit} ids (got {len(values)})")
        return False
    for i, value in enumerate(values):
        if not check_id(v, value, f"{field}[{i}]", limit=item_limit):
            return False
    return True


def check_channel_type(v: Violations, value: str, field: str) -> bool:
    if not check_id(v, value, field, limit=MAX_CHANNEL_TYPE):
        return False
    return v.check(":" not in value, field, "must not contain ':'")


def check_cid(v: Violations, value: str, field: str) -> bool:
    if not check_id(v, value, field, limit=MAX_CID):
        return False
    kind, sep, ident = value.partition(":")
    return v.check(bool(sep and kind and ident), field, "must be a cid of the form 'type:id'")


def check_text(v: Violations, value: str, field: str, limit: int) -> bool:
    return v.check(len(value) <= limit, field, f"must be at most {limit} characters")


def batch_size(v: Violations, value: int, field: str = "batch_size") -> int:
    if value < 0 or value > MAX_BATCH:
        v.add(field, f"must be between 0 and {MAX_BATCH} (0 = {DEFAULT_BATCH})")
        return DEFAULT_BATCH
    return value or DEFAULT_BATCH
