"""Push: the `push` destination of the event dispatcher (DESIGN §5, §10.1).

The dispatcher hands over a batch of events; `notifications_for` answers one task per device of
each receiving member of each `message.new` event (never the sender, nothing for a campaign with
`skip_push`), with the devices of the whole batch fetched at once. `send` makes one attempt at
one task and says what came of it:

- DELIVERED: the endpoint took it (2xx);
- RETRY: try again later — a timeout, a connection or DNS failure, 408, 429 or 5xx; when the
  endpoint said how long to wait (Retry-After), `retry_after_s` holds it;
- GONE: 404 or 410, the subscription no longer exists: the device has been removed from the
  directory, nothing more to do;
- REJECTED: any other answer, or an endpoint Herald may not call: a dead letter.

`webpush` devices get the notification JSON encrypted for the browser (RFC 8291, aes128gcm, with
pywebpush) and signed with VAPID (RFC 8292); `http` devices get it as a JSON POST signed with
the Standard Webhooks headers. Retries, backoff and dead letters are the dispatcher's.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
import httpx
from py_vapid import VapidException
from pywebpush import WebPusher, WebPushException

from herald.delivery.v1 import delivery_pb2
from herald.segment.v1 import directory_pb2
from services.delivery_svc.answers import first_bytes, retry_after_s
from services.delivery_svc.upstream import SegmentClient
from services.delivery_svc.notifications import Notification, encode, notification_of, receivers_of, sender_of
from services.delivery_svc.push_http import push_client
from services.delivery_svc.vapid import VapidKey
from services.kit.config import Settings
from services.kit.endpoints import EndpointRefused, ResolveUnavailable, parse_endpoint
from services.kit.protos import struct_to_dict
from services.kit.webhook_signing import signature_headers, webhook_key

log = logging.getLogger("herald.push")

PUSH_TIMEOUT_S = 10.0  # each phase of one attempt: connecting, sending, each read
PUSH_DEADLINE_S = 30.0  # one whole attempt, DNS to the last byte read
PUSH_TTL_S = 24 * 3600  # how long a push service keeps a web push for a device that is offline
MAX_WEBPUSH_BODY = 4096  # what push services must accept (RFC 8030 §7.2)
MAX_ANSWER_BYTES = 512  # of an endpoint's answer to a failed push, kept in the error


class PushResult(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GONE = "gone"
    REJECTED = "rejected"


@dataclass(frozen=True)
class PushOutcome:
    """What came of one attempt; `http_status` 0 when there was no answer, `error` says why it
    did not succeed (for the log and the dead letter)."""

    result: PushResult
    http_status: int = 0
    retry_after_s: float | None = None
    error: str = ""


@dataclass(frozen=True)
class PushEvent:
    """An event for push, with its campaign's `skip_push`."""

    event: delivery_pb2.Event
    skip_push: bool = False


@dataclass(frozen=True)
class PushTask:
    """One notification for one device; `send(task.device, task.notification)` delivers it."""

    event: delivery_pb2.Event
    device: directory_pb2.Device
    notification: Notification


class Push:
    def __init__(self, directory: SegmentClient, client: httpx.AsyncClient, vapid: VapidKey, webhook_key: bytes,
                 *, allow_private: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.client = client
        self.vapid = vapid
        self.webhook_key = webhook_key
        self.allow_private = allow_private
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, directory: SegmentClient) -> Push:
        """Push as configured (the VAPID key and webhook secret generated into the data dir when
        unset); ConfigError names a malformed variable."""
        settings = settings.with_vapid_key().with_webhook_secret()
        return cls(directory, push_client(allow_private=settings.push_allow_private,
                                                           timeout_s=PUSH_TIMEOUT_S),
                   VapidKey(settings.vapid_private_key, settings.vapid_subject), webhook_key(settings.webhook_secret),
                   allow_private=settings.push_allow_private)

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- what to send -------------------------------------------------------------------------

    async def notifications_for(self, events: Sequence[PushEvent]) -> list[PushTask]:
        """One task per device of each receiving member of each message event, in event order.
        The devices come from one ListDevices call (one per 1,000 receivers), the senders' names
        from one GetUsers call; an unreachable segment service raises grpc.aio.AioRpcError."""
        wanted = [(item.event, receivers_of(item.event)) for item in events if not item.skip_push]
        wanted = [(event, receivers) for event, receivers in wanted if receivers]
        if not wanted:
            return []
        devices = await self.directory.devices_of(user_id for _, receivers in wanted for user_id in receivers)
        notified = [(event, receivers) for event, receivers in wanted if any(u in devices for u in receivers)]
        if not notified:
            return []
        names = await self.directory.names_of(sender_of(event) for event, _ in notified)
        tasks: list[PushTask] = []
        for event, receivers in notified:
            notification = notification_of(event, names.get(sender_of(event), ""))
            tasks.extend(PushTask(event, device, notification)
                         for user_id in receivers for device in devices.get(user_id, ()))
        return tasks

    # --- sending ------------------------------------------------------------------------------

    async def send(self, device: directory_pb2.Device, notification: Notification) -> PushOutcome:
        """One attempt at delivering `notification` to `device`; never raises for what the
        endpoint or the network does."""
        try:
            parse_endpoint(device.endpoint, allow_private=self.allow_private)  # the rules may have changed
            headers, body = self._request(device, notification)
            async with asyncio.timeout(PUSH_DEADLINE_S):
                outcome = await self._post(device.endpoint, headers, body)
        except EndpointRefused as refused:
            outcome = PushOutcome(PushResult.REJECTED, error=f"endpoint {refused}")
        except _Unsendable as unsendable:
            outcome = PushOutcome(PushResult.REJECTED, error=str(unsendable))
        except (ResolveUnavailable, TimeoutError, httpx.TimeoutException) as exc:
            outcome = PushOutcome(PushResult.RETRY, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            outcome = PushOutcome(PushResult.REJECTED, error=f"endpoint is not a valid URL: {exc}")
        except httpx.TransportError as exc:
            outcome = PushOutcome(PushResult.RETRY, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
        if outcome.result is PushResult.GONE:
            await self._forget(device)
        return outcome

    def _request(self, device: directory_pb2.Device, notification: Notification) -> tuple[dict[str, str], bytes]:
        if device.provider == directory_pb2.DEVICE_PROVIDER_WEBPUSH:
            return self._webpush_request(device, notification)
        if device.provider == directory_pb2.DEVICE_PROVIDER_HTTP:
            return self._http_request(device, notification)
        raise _Unsendable(f"device provider {device.provider} is not one Herald sends to")

    def _webpush_request(self, device: directory_pb2.Device,
                         notification: Notification) -> tuple[dict[str, str], bytes]:
        keys = struct_to_dict(device.keys)
        subscription = {"endpoint": device.endpoint, "keys": {name: keys.get(name) for name in ("p256dh", "auth")}}
        try:
            body = WebPusher(subscription).encode(encode(notification.payload()), "aes128gcm")["body"]
            authorization = self.vapid.authorization(device.endpoint)
        except (WebPushException, VapidException, ValueError, TypeError) as exc:
            raise _Unsendable(f"cannot encrypt or sign for this device: {exc}") from None
        if len(body) > MAX_WEBPUSH_BODY:
            raise _Unsendable(f"the encrypted notification is {len(body)} bytes, over {MAX_WEBPUSH_BODY}")
        return {"authorization": authorization, "content-encoding": "aes128gcm",
                "content-type": "application/octet-stream", "ttl": str(PUSH_TTL_S), "urgency": "normal"}, body

    def _http_request(self, device: directory_pb2.Device, notification: Notification) -> tuple[dict[str, str], bytes]:
        # The device's ids let one gateway endpoint serve many devices.
        body = encode({**notification.payload(), "user_id": device.user_id, "device_id": device.id})
        signed = signature_headers(self.webhook_key, notification.delivery_id(device.user_id, device.id),
                                   int(self.clock()), body)
        return {"content-type": "application/json", **signed}, body

    async def _post(self, endpoint: str, headers: dict[str, str], body: bytes) -> PushOutcome:
        async with self.client.stream("POST", endpoint, headers=headers, content=body) as response:
            if response.is_success:
                return PushOutcome(PushResult.DELIVERED, response.status_code)
            answer = await first_bytes(response, MAX_ANSWER_BYTES)
        status = response.status_code
        error = f"HTTP {status}: {answer}".rstrip(": ")
        if status in (404, 410):
            return PushOutcome(PushResult.GONE, status, error=error)
        if status in (408, 429) or status >= 500:
            delay = retry_after_s(response.headers.get("retry-after"), self.clock())
            return PushOutcome(PushResult.RETRY, status, retry_after_s=delay, error=error)
        return PushOutcome(PushResult.REJECTED, status, error=error)

    async def _forget(self, device: directory_pb2.Device) -> None:
        """Removes a device its push service says is gone; a failure is logged, and the next push
        to it will be told the same."""
        try:
            await self.directory.forget_device(device)
        except grpc.aio.AioRpcError as exc:
            log.warning("cannot remove a gone device", extra={"user_id": device.user_id, "device_id": device.id,
                                                               "code": exc.code().name})


class _Unsendable(Exception):
    """The notification cannot be made for this device (its keys, its provider, its size)."""
