"""In-process change notices per delivery, so watchers wake on change instead of polling the DB."""

from __future__ import annotations

import asyncio


class Notifier:
    """`changed(id)` returns an event set at the next change of that delivery; take it before
    reading the state, so a change between the read and the wait is never missed."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def changed(self, campaign_id: str) -> asyncio.Event:
        event = self._events.get(campaign_id)
        if event is None:
            event = self._events[campaign_id] = asyncio.Event()
        return event

    def notify(self, campaign_id: str) -> None:
        event = self._events.pop(campaign_id, None)
        if event is not None:
            event.set()
