"""What the dispatcher hands events to: a destination (`webhook`, `push`) says which events it
takes, turns a window of them into handoffs (one per event for webhooks, one per device for
push), and makes one attempt at a handoff. Retries, backoff, dead letters and positions are the
dispatcher's, the same for every destination."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from herald.delivery.v1 import delivery_pb2
from services.kit import event_types

# The events a campaign's skip_push / skip_webhook suppress; campaign.* events always go out.
CAMPAIGN_SIDE_EFFECTS = frozenset(event_types.PER_RECIPIENT)


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """An event as the dispatcher reads it, with its campaign's skip flags."""

    position: int
    event: delivery_pb2.Event
    campaign_id: str
    skip_push: bool = False
    skip_webhook: bool = False


@dataclass(frozen=True, slots=True)
class Handoff:
    """One thing to deliver: `webhook_id` is stable across attempts and replays (receivers dedupe
    by it); `target` is the destination's own (push: the device's notification)."""

    event: delivery_pb2.Event
    webhook_id: str
    device_id: str = ""
    url: str = ""
    target: Any = None


class Result(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # a timeout, a connection error, 5xx or 429: try again later
    GONE = "gone"  # push: the device no longer exists; nothing more to do
    REJECTED = "rejected"  # any other answer: a dead letter at once


@dataclass(frozen=True, slots=True)
class Attempt:
    """What came of one attempt; `http_status` 0 when there was no answer."""

    result: Result
    http_status: int = 0
    retry_after_s: float | None = None  # the receiver's Retry-After
    error: str = ""


class Destination(Protocol):
    name: str
    # The event types it may take; the dispatcher reads only those (None: every type).
    types: frozenset[str] | None

    def takes(self, event: OutboxEvent) -> bool:
        """Whether the event is for this destination at all (types, the campaign's skip flag)."""
        ...

    async def handoffs(self, events: Sequence[OutboxEvent]) -> list[Handoff]:
        """The handoffs of a window of events it takes, in event order; raising leaves the
        window to be tried again."""
        ...

    async def attempt(self, handoff: Handoff, number: int) -> Attempt:
        """Attempt `number` (1, 2, …) at delivering; never raises for what the receiver does."""
        ...

    async def replay(self, event: delivery_pb2.Event, webhook_id: str, device_id: str) -> Handoff | None:
        """The handoff of a replayed dead letter (None: nothing to send any more)."""
        ...

    async def aclose(self) -> None:
        ...
