"""What becomes of each recipient of a batch, from the stream to the write: sent with its
message and events, skipped (it could not be addressed) or failed (its message could not be
made), with a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from herald.delivery.v1 import delivery_pb2
from services.delivery_svc.store import EventRow, MessageRow
from services.kit.event_types import CHANNEL_CREATED

SENT = delivery_pb2.RECIPIENT_STATUS_SENT
SKIPPED = delivery_pb2.RECIPIENT_STATUS_SKIPPED
FAILED = delivery_pb2.RECIPIENT_STATUS_FAILED

USER_NOT_FOUND = "user_not_found"
CHANNEL_NOT_FOUND = "channel_not_found"



@dataclass(slots=True)
class Outcome:
    target_id: str
    status: int
    reason: str = ""
    cid: str = ""
    detail: str = ""  # what failed, for a preview (the log keeps only the reason)
    message: MessageRow | None = None
    events: list[EventRow] = field(default_factory=list)
    created: bool = False  # the campaign created the recipient's channel
    users: int = 0  # members the message reaches (stats_users_sent)


@dataclass(slots=True)
class PreparedBatch:
    """A batch ready to write: its recipients' outcomes and the cursor that covers them."""

    outcomes: list[Outcome]
    cursor: str


class CreatedChannel(NamedTuple):
    """A channel the campaign created for a recipient whose batch is not written: its
    channel.created event and count are settled when the run ends."""

    target_id: str
    event: EventRow


def created_channels(outcomes: list[Outcome]) -> list[CreatedChannel]:
    return [CreatedChannel(o.target_id, e) for o in outcomes if o.created for e in o.events
            if e.type == CHANNEL_CREATED]
