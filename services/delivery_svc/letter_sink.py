"""Writes what the dispatcher finished in batches, off the senders' path: dead letters, and the
replays done with (removed from the replay queue). A receiver that refuses everything costs one
small transaction per batch, not one per event. Each item's callback runs once its transaction
committed, so a destination moves its position past an event only once its dead letter is
stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.delivery_svc import store
from services.kit.db import write_transaction

log = logging.getLogger("herald.delivery.dispatch")

FLUSH_BATCH = 500
RETRY_S = 1.0


@dataclass(slots=True)
class _Item:
    letter: dict[str, Any] | None  # a dead_letters row, or None
    replay_id: str  # a replay done with ("" for none)
    committed: Callable[[], None]


class LetterSink:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._items: list[_Item] = []
        self._ready = asyncio.Event()

    def add(self, letter: dict[str, Any] | None, replay_id: str, committed: Callable[[], None]) -> None:
        self._items.append(_Item(letter, replay_id, committed))
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._items)

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 — kept and written again (the database restarting)
                log.exception("writing dead letters failed")
                await asyncio.sleep(RETRY_S)

    async def flush(self) -> None:
        """Writes everything added so far, in batches; callbacks run after each commit."""
        while self._items:
            batch = self._items[:FLUSH_BATCH]
            async with write_transaction(self.sessions) as session:
                await store.insert_dead_letters(session, [i.letter for i in batch if i.letter is not None])
                await store.delete_replays(session, [i.replay_id for i in batch if i.replay_id])
            del self._items[:len(batch)]
            for item in batch:
                item.committed()
        self._ready.clear()
