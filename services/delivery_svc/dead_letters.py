"""Rules of QueryDeadLetters and ReplayDeadLetters (DESIGN §10.1): page the dead letters, and
queue them to be sent again with the same webhook id (a replay takes them off the list; one that
fails every attempt again comes back as a new dead letter)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.delivery.v1 import delivery_pb2
from services.delivery_svc import convert, store
from services.kit.db import transaction, utcnow, write_transaction
from services.kit.errors import FieldViolation, InvalidArgument, Violations
from services.kit.fields import check_id_list
from services.kit.filters import Field, FilterSpec, Kind, compile_filter
from services.kit.limits import DEAD_LETTERS_PAGE, MAX_REPLAY_IDS
from services.kit.paging import keyset_page, parse_sort, resolve_limit

REPLAY_BATCH = 1000  # dead letters moved to the replay queue per transaction

_d = store.dead_letters
DEAD_LETTER_FILTER = FilterSpec({
    "id": Field(_d.c.id),
    "type": Field(_d.c.type),
    "campaign_id": Field(_d.c.campaign_id),
    "destination": Field(_d.c.destination),
    "webhook_id": Field(_d.c.webhook_id),
    "device_id": Field(_d.c.device_id),
    "created_at": Field(_d.c.created_at, Kind.DATETIME),
})
DEAD_LETTER_SORT = {"created_at": _d.c.created_at, "id": _d.c.id}


class DeadLetters:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], replays_queued: Callable[[], None]) -> None:
        self.sessions = sessions
        self.replays_queued = replays_queued  # wakes the dispatcher

    async def query(self, filter_: dict[str, Any] | None, sort: list[Any], limit: int, next_: str,
                    prev: str) -> tuple[list[delivery_pb2.DeadLetter], str, str]:
        condition = compile_filter(DEAD_LETTER_FILTER, filter_)
        limit = resolve_limit(limit, DEAD_LETTERS_PAGE.default, DEAD_LETTERS_PAGE.max)
        keys = parse_sort(sort, DEAD_LETTER_SORT, default=[("created_at", 1)], tie_breaker="id")
        async with transaction(self.sessions) as session:
            page = await keyset_page(session, select(_d).where(condition), keys, limit=limit, next=next_, prev=prev,
                                     fingerprint_of=filter_)
        return [convert.dead_letter(row) for row in page.rows], page.next, page.prev

    async def replay(self, ids: Sequence[str], all_: bool, filter_: dict[str, Any] | None) -> int:
        """Queues the chosen dead letters (exactly one of ids, all, filter); how many."""
        chosen = [name for name, given in (("ids", bool(ids)), ("all", all_), ("filter", filter_ is not None))
                  if given]
        if len(chosen) != 1:
            fields = chosen[1:] or ["ids"]
            raise InvalidArgument(violations=[_one_of(field, chosen) for field in fields])
        v = Violations()
        check_id_list(v, ids, "ids", limit=MAX_REPLAY_IDS, required=False)
        v.raise_if_any()
        condition = _d.c.id.in_(list(ids)) if ids else compile_filter(DEAD_LETTER_FILTER, filter_)
        queued = 0
        while True:
            async with write_transaction(self.sessions, urgent=True) as session:
                moved = await store.queue_replays(session, condition, REPLAY_BATCH, utcnow())
            queued += moved
            if moved < REPLAY_BATCH:
                break
        if queued:
            self.replays_queued()
        return queued


def _one_of(field: str, chosen: list[str]) -> FieldViolation:
    given = " and ".join(chosen) if chosen else "none"
    return FieldViolation(field, f"give exactly one of ids, all and filter (given: {given})")
