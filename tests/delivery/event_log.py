"""Helpers of the tests below gRPC: events written and positioned directly."""

from __future__ import annotations

import datetime as dt

from services.delivery_svc import store
from services.delivery_svc.sequencer import Sequencer
from services.kit.db import transaction

T = dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc)


def message_new(event_id: str, *user_ids: str) -> dict:
    """An outbox row of a message.new event for `user_ids`."""
    return {"id": event_id, "type": "message.new", "campaign_id": "k1", "cid": "messaging:x", "message_id": "",
            "user_ids": list(user_ids), "payload": b"", "created_at": T}


async def add_and_position(sequencer: Sequencer, rows: list[dict]) -> None:
    """Writes `rows` as a batch does, then positions them as the sequencer's task would."""
    async with transaction(sequencer.sessions) as session:
        await store.write_rows(session, store.events, rows)
    while await sequencer.sequence_once():
        pass
