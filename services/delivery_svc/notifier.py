"""In-process change notices per delivery, so watchers wake on change instead of polling the DB."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Notifier:
    """`changed(id)` returns an event set at the next change of that delivery; take it before
    reading the state, so a change between the read and the wait is never missed."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._on_change = on_change  # any delivery changed (the sequencer: events may be there)

    def changed(self, campaign_id: str) -> asyncio.Event:
        event = self._events.get(campaign_id)
        if event is None:
            event = self._events[campaign_id] = asyncio.Event()
        return event

    def notify(self, campaign_id: str) -> None:
        self._on_change()
        event = self._events.pop(campaign_id, None)
        if event is not None:
            event.set()
