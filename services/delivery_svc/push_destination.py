"""The `push` destination: plugs push.Push (devices, notifications, one attempt) into the
dispatcher, which owns retries, backoff, dead letters and positions. A campaign's message.new
events become one handoff per device of each receiving member, unless it has skip_push."""

from __future__ import annotations

from collections.abc import Sequence

from herald.delivery.v1 import delivery_pb2
from services.delivery_svc.destinations import Attempt, Handoff, OutboxEvent, Result
from services.delivery_svc.push import Push, PushEvent, PushTask
from services.kit.event_types import MESSAGE_NEW


class PushDestination:
    name = "push"
    types: frozenset[str] | None = frozenset({MESSAGE_NEW})

    def __init__(self, push: Push) -> None:
        self.push = push

    def takes(self, event: OutboxEvent) -> bool:
        return not event.skip_push

    async def handoffs(self, events: Sequence[OutboxEvent]) -> list[Handoff]:
        tasks = await self.push.notifications_for([PushEvent(e.event, e.skip_push) for e in events])
        return [_handoff(task) for task in tasks]

    async def attempt(self, handoff: Handoff, number: int) -> Attempt:
        task: PushTask = handoff.target
        outcome = await self.push.send(task.device, task.notification)
        return Attempt(Result(outcome.result.value), outcome.http_status, outcome.retry_after_s, outcome.error)

    async def replay(self, event: delivery_pb2.Event, webhook_id: str, device_id: str) -> Handoff | None:
        """The device as the directory has it now; None once it is gone."""
        for task in await self.push.notifications_for([PushEvent(event)]):
            handoff = _handoff(task)
            if handoff.webhook_id == webhook_id:
                return handoff
        return None

    async def aclose(self) -> None:
        await self.push.aclose()


def _handoff(task: PushTask) -> Handoff:
    device = task.device
    return Handoff(task.event, task.notification.delivery_id(device.user_id, device.id), device.id,
                   device.endpoint, task)
