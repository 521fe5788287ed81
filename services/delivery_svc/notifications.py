"""What a push says: one notification per `message.new` event, for each receiving member of its
channel (the event's `user_ids` but the sender; DESIGN §5, §10.1)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from herald.delivery.v1 import delivery_pb2
from services.kit.event_types import MESSAGE_NEW
from services.kit.limits import NOTIFICATION_BODY_CHARS

# Characters of the title (the sender's name): with the body and data it fits a web push
# payload (4 KiB encrypted) whatever the name.
MAX_TITLE = 100


@dataclass(frozen=True)
class Notification:
    """A push notification of one message event: `title` the sender's name, `body` the text cut to
    200 characters, `data` what a client needs to open the message."""

    event_id: str
    title: str
    body: str
    campaign_id: str
    cid: str
    message_id: str

    def payload(self) -> dict[str, Any]:
        return {"title": self.title, "body": self.body,
                "data": {"campaign_id": self.campaign_id, "cid": self.cid, "message_id": self.message_id}}

    def delivery_id(self, user_id: str, device_id: str) -> str:
        """The id of this notification's delivery to one device: the same on every attempt, so a
        receiver can drop repeats (`webhook-id` of http pushes)."""
        key = "\0".join((self.event_id, user_id, device_id)).encode()
        return "push_" + hashlib.sha256(key).hexdigest()[:32]


def encode(payload: dict[str, Any]) -> bytes:
    # UTF-8 as is: \\u escapes would make a non-Latin text up to 6 times longer.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def sender_of(event: delivery_pb2.Event) -> str:
    return event.message.user_id


def receivers_of(event: delivery_pb2.Event) -> list[str]:
    """The members an event notifies: its users but the sender, for message events only."""
    if event.type != MESSAGE_NEW:
        return []
    sender = sender_of(event)
    return [user_id for user_id in dict.fromkeys(event.user_ids) if user_id != sender]


def notification_of(event: delivery_pb2.Event, sender_name: str) -> Notification:
    """The notification of a message event; the title falls back to the sender's id when the
    sender has no name (or no longer exists)."""
    message = event.message
    return Notification(event_id=event.id, title=(sender_name or message.user_id)[:MAX_TITLE],
                        body=message.text[:NOTIFICATION_BODY_CHARS], campaign_id=message.created_by_campaign_id,
                        cid=message.cid or event.cid, message_id=message.id)
