"""Field rules every service applies the same way: ids are 1..MAX_ID characters, no string
holds a NUL character (PostgreSQL cannot store one, so SQLite must not accept one either), and
a user target's channel spec is what EnsureChannels accepts (segment_svc checks it as it enters;
delivery_svc checks each rendered spec by it, so that one bad recipient does not fail a batch)."""

from __future__ import annotations

from collections.abc import Sequence

from herald.segment.v1 import directory_service_pb2
from services.kit.errors import Violations
from services.kit.limits import MAX_CHANNEL_TYPE, MAX_CID, MAX_ID, MAX_MEMBERS, MAX_TEAM

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


def check_id_list(v: Violations, values: Sequence[str], field: str, *, limit: int, item_limit: int = MAX_ID,
                  required: bool = True) -> bool:
    """1..limit ids (0..limit when not required), each valid; only the first bad one is named
    (10,000 errors help nobody)."""
    if not values:
        if required:
            v.add(field, "must list at least one id")
        return not required
    if len(values) > limit:
        v.add(field, f"must list at most {limit} ids (got {len(values)})")
        return False
    for i, value in enumerate(values):
        if not check_id(v, value, f"{field}[{i}]", limit=item_limit):
            return False
    return True


def check_cid(v: Violations, value: str, field: str) -> bool:
    """A channel's cid: an id of at most MAX_CID characters of the form `type:id`."""
    if not check_id(v, value, field, limit=MAX_CID):
        return False
    kind, sep, ident = value.partition(":")
    return v.check(bool(sep and kind and ident), field, "must be a cid of the form 'type:id'")


def check_channel_type(v: Violations, value: str, field: str) -> bool:
    """A channel type: required, at most MAX_CHANNEL_TYPE characters, and no ':' (it separates type:id)."""
    if not check_id(v, value, field, limit=MAX_CHANNEL_TYPE):
        return False
    return v.check(":" not in value, field, "must not contain ':'")


def check_user_channel_spec(v: Violations, spec: directory_service_pb2.ChannelSpec, prefix: str = "", *,
                            type_: bool = True, members: bool = True) -> None:
    """The channel a user target asks EnsureChannels for (fields named `prefix` + "type" etc.):
    its type, id (empty: derived from the members), team and members. A caller that checked the
    type, or the members' ids, once for many specs (they are the same in all) leaves them out."""
    if type_:
        check_channel_type(v, spec.type, f"{prefix}type")
    check_id(v, spec.id, f"{prefix}id", required=False)
    check_text(v, spec.team, f"{prefix}team", MAX_TEAM)
    if len(spec.members) > MAX_MEMBERS:
        v.add(f"{prefix}members", f"must list at most {MAX_MEMBERS} members")
        return
    if members:
        for j, member in enumerate(spec.members):
            check_id(v, member.user_id, f"{prefix}members[{j}].user_id")
