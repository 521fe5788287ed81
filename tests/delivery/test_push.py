"""Push over real HTTP, as the event dispatcher drives it (`Push.notifications_for`, `Push.send`):
web push to a receiver that decrypts like a browser and checks the VAPID signature against the
key GetPushConfig hands out; http devices signed with Standard Webhooks; what each answer means
(gone devices removed, 429 with Retry-After, rejects); endpoints refused again at send time."""

from __future__ import annotations

import base64
import email.utils
import json
import os
from dataclasses import dataclass, replace

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from delivery.helpers import Stubs, campaign, start, upsert_users, wait_done
from delivery.receiver import Receiver, receiving
from harness import eventually, serve_system
from herald.delivery.v1 import delivery_pb2, message_service_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds
from services.delivery_svc import convert, store
from services.delivery_svc.push import Push, PushEvent, PushOutcome, PushResult
from services.delivery_svc.upstream import SegmentClient
from services.kit.config import ConfigError, new_vapid_key
from services.kit.probes import free_port


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """A browser's push subscription: its ECDH key pair and auth secret (RFC 8291)."""

    key: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def new(cls) -> Browser:
        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    def device(self, user_id: str, endpoint: str) -> directory_pb2.Device:
        point = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
        device = directory_pb2.Device(user_id=user_id, provider=directory_pb2.DEVICE_PROVIDER_WEBPUSH,
                                      endpoint=endpoint)
        device.keys.update({"p256dh": b64url(point), "auth": b64url(self.auth)})
        return device

    def decrypt(self, body: bytes) -> dict:
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"))


def http_device(user_id: str, endpoint: str) -> directory_pb2.Device:
    return directory_pb2.Device(user_id=user_id, provider=directory_pb2.DEVICE_PROVIDER_HTTP, endpoint=endpoint)


def message_event(text: str = "Hello", *, members=("ann", "boss"), message_id: str = "m1", sender: str = "boss",
                  cid: str = "messaging:ann-boss") -> delivery_pb2.Event:
    """A message.new event as the outbox holds it: `user_ids` are the channel's members, sender included."""
    message = delivery_pb2.Message(id=message_id, cid=cid, type="regular", text=text, user_id=sender,
                                   created_by_campaign_id="welcome")
    return delivery_pb2.Event(id=f"message.new:{message_id}", type="message.new", cid=cid, message=message,
                              user_ids=list(members))


async def add_devices(stubs: Stubs, *devices: directory_pb2.Device) -> list[directory_pb2.Device]:
    return list((await stubs.directory.UpsertDevices(ds.UpsertDevicesRequest(devices=devices))).devices)


async def device_ids(stubs: Stubs, *user_ids: str) -> list[str]:
    return [d.id for d in (await stubs.directory.ListDevices(ds.ListDevicesRequest(user_ids=user_ids))).devices]


@pytest.fixture
async def push_system(new_db_url, tmp_path):
    """Segment and delivery services allowing local endpoints, their stubs, and delivery's Push."""
    async with serve_system(new_db_url, tmp_path, names=("segment", "delivery"), push_allow_private=True) as system:
        stubs = Stubs(system.channel("segment"), system.channel("delivery"))
        await upsert_users(stubs.directory, ["ann", "bob"])
        await upsert_users(stubs.directory, ["boss"], name="The Boss")
        yield system, stubs, system.servers["delivery"].service.push


@pytest.fixture
async def receiver():
    async with receiving() as running:
        yield running


async def test_a_web_push_decrypts_in_the_browser_signed_with_the_advertised_vapid_key(push_system, receiver):
    system, stubs, push = push_system
    ann, boss = Browser.new(), Browser.new()
    await add_devices(stubs, ann.device("ann", f"{receiver.url}/push/ann"), boss.device("boss", f"{receiver.url}/b"))
    text = "Grüße, 你好 " + "x" * 300

    [task] = await push.notifications_for([PushEvent(message_event(text))])  # not the sender's device
    assert task.device.user_id == "ann"
    assert await push.send(task.device, task.notification) == PushOutcome(PushResult.DELIVERED, 201)

    [request] = receiver.requests
    assert request.path == "/push/ann" and request.method == "POST"
    assert request.headers["content-encoding"] == "aes128gcm" and int(request.headers["ttl"]) > 0
    assert ann.decrypt(request.body) == {"title": "The Boss", "body": text[:200], "data": {
        "campaign_id": "welcome", "cid": "messaging:ann-boss", "message_id": "m1"}}

    config = await stubs.messages.GetPushConfig(message_service_pb2.GetPushConfigRequest())
    scheme, _, params = request.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    vapid = dict(part.strip().split("=", 1) for part in params.split(","))
    assert vapid["k"] == config.vapid_public_key
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(config.vapid_public_key))
    claims = jwt.decode(vapid["t"], public_key, algorithms=["ES256"], audience=receiver.url)
    assert claims["sub"] == system.settings.vapid_subject and "exp" in claims


async def test_an_http_push_verifies_as_a_standard_webhook(push_system, receiver):
    system, stubs, push = push_system
    [device] = await add_devices(stubs, http_device("ann", f"{receiver.url}/hook"))
    [task] = await push.notifications_for([PushEvent(message_event("Hi Ann"))])
    for _ in range(2):
        assert (await push.send(task.device, task.notification)).result is PushResult.DELIVERED

    first, again = receiver.requests
    secret = system.settings.webhook_secret  # the harness gives one, as PostgreSQL requires
    assert Webhook(secret).verify(first.body, first.headers) == {
        "title": "The Boss", "body": "Hi Ann", "data": {"campaign_id": "welcome", "cid": "messaging:ann-boss",
                                                        "message_id": "m1"},
        "user_id": "ann", "device_id": device.id}
    assert first.headers["content-type"] == "application/json"
    # A repeated attempt keeps its webhook-id, so the receiver can drop it.
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(os.urandom(32)).decode()).verify(first.body, first.headers)


async def test_notifications_go_to_every_device_of_every_receiver_but_the_sender(push_system, receiver):
    _, stubs, push = push_system
    users = [f"u{i:04d}" for i in range(1200)]
    await upsert_users(stubs.directory, users)
    for part in (users[:1000], users[1000:]):
        await add_devices(stubs, *(http_device(u, f"{receiver.url}/hook/{u}") for u in part))
    await add_devices(stubs, http_device("ann", f"{receiver.url}/ann/1"), http_device("ann", f"{receiver.url}/ann/2"),
                      http_device("boss", f"{receiver.url}/boss"))
    events = [PushEvent(message_event(members=[*users[i:i + 100], "boss"], message_id=f"m{i}"))
              for i in range(0, 1200, 100)]
    events += [
        PushEvent(message_event(members=["ann", "boss"], message_id="ann")),
        PushEvent(message_event(members=["ann", "boss"], message_id="skipped"), skip_push=True),
        PushEvent(message_event(members=["bob", "boss"], message_id="no-device")),
        PushEvent(delivery_pb2.Event(id="channel.created:welcome:messaging:x", type="channel.created",
                                     user_ids=["ann", "boss"])),
    ]
    tasks = await push.notifications_for(events)
    assert sorted(t.device.user_id for t in tasks) == sorted([*users, "ann", "ann"])
    assert {t.notification.message_id for t in tasks} == {*(f"m{i}" for i in range(0, 1200, 100)), "ann"}
    assert await push.notifications_for([]) == []


async def test_the_events_of_a_delivered_campaign_notify_its_receivers(push_system, receiver):
    """The outbox as the dispatcher reads it: message.new rows, their messages filled in."""
    system, stubs, push = push_system
    await add_devices(stubs, http_device("ann", f"{receiver.url}/ann"), http_device("bob", f"{receiver.url}/bob"),
                      http_device("boss", f"{receiver.url}/boss"))
    await start(stubs, campaign("welcome", sender_id="boss", user_ids=["ann", "bob"], text="Hi {{ receiver.id }}"))
    await wait_done(stubs, "welcome")
    app = system.servers["delivery"].service
    async with app.sessions() as session:
        rows = (await session.execute(select(store.events).where(store.events.c.type == "message.new"))).all()
        messages = {row.id: convert.message(row) for row in (await session.execute(select(store.messages))).all()}
    events = []
    for row in rows:
        event = convert.event(row)
        event.message.CopyFrom(messages[row.message_id])
        events.append(PushEvent(event))

    tasks = await push.notifications_for(events)
    assert sorted((t.device.user_id, t.notification.title, t.notification.body) for t in tasks) == [
        ("ann", "The Boss", "Hi ann"), ("bob", "The Boss", "Hi bob")]
    # The dispatcher sends them (once each; never to the sender).
    await eventually(lambda: sorted(r.path for r in receiver.requests), lambda paths: paths == ["/ann", "/bob"],
                     what="one push to each receiver")


async def test_what_each_answer_means(push_system, receiver: Receiver):
    _, stubs, push = push_system
    now = 1_900_000_000.0
    fixed = Push(push.directory, push.client, push.vapid, push.webhook_key, allow_private=True, clock=lambda: now)
    receiver.answer("/gone", 410)
    receiver.answer("/missing", 404)
    receiver.answer("/busy", 429, retry_after="7")
    receiver.answer("/later", 429, retry_after=email.utils.formatdate(now + 120, usegmt=True))
    receiver.answer("/down", 503)
    receiver.answer("/bad", 400)
    receiver.answer("/moved", 301, location="http://127.0.0.1:1/elsewhere")
    paths = ["/gone", "/missing", "/busy", "/later", "/down", "/bad", "/moved"]
    devices = await add_devices(stubs, *(http_device("ann", f"{receiver.url}{p}") for p in paths),
                                http_device("ann", f"http://127.0.0.1:{free_port()}/nobody"))
    [task, *_] = await fixed.notifications_for([PushEvent(message_event())])
    outcomes = {device.endpoint.rsplit("/", 1)[1]: await fixed.send(device, task.notification) for device in devices}

    assert {name: (o.result, o.http_status, o.retry_after_s) for name, o in outcomes.items()} == {
        "gone": (PushResult.GONE, 410, None), "missing": (PushResult.GONE, 404, None),
        "busy": (PushResult.RETRY, 429, 7.0), "later": (PushResult.RETRY, 429, 120.0),
        "down": (PushResult.RETRY, 503, None), "bad": (PushResult.REJECTED, 400, None),
        "moved": (PushResult.REJECTED, 301, None), "nobody": (PushResult.RETRY, 0, None)}
    assert outcomes["bad"].error == "HTTP 400: answer 400" and outcomes["nobody"].error
    # Gone devices are removed from the directory; the others stay.
    assert sorted(await device_ids(stubs, "ann")) == sorted(d.id for d in devices if "gone" not in d.endpoint
                                                            and "missing" not in d.endpoint)


async def test_endpoints_are_checked_again_when_sending(push_system, receiver):
    """Devices stored while private endpoints were allowed are refused by a Push that does not
    allow them, before anything is sent — also a host name resolving to loopback."""
    system, stubs, push = push_system
    port = receiver.url.rsplit(":", 1)[1]
    devices = await add_devices(stubs, http_device("ann", f"{receiver.url}/plain"),
                                http_device("ann", f"https://127.0.0.1:{port}/literal"),
                                http_device("ann", f"https://localhost:{port}/name"))
    strict = Push.from_settings(replace(system.settings, push_allow_private=False),
                                SegmentClient(system.channel("segment")))
    try:
        [task, *_] = await strict.notifications_for([PushEvent(message_event())])
        outcomes = [await strict.send(device, task.notification) for device in devices]
    finally:
        await strict.aclose()
    assert [o.result for o in outcomes] == [PushResult.REJECTED] * 3
    assert "https" in outcomes[0].error and "private" in outcomes[1].error and "private" in outcomes[2].error
    assert receiver.requests == []
    assert len(await device_ids(stubs, "ann")) == 3  # refused, not gone


async def test_the_vapid_key_is_generated_once_or_taken_from_the_configuration(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path, names=("segment", "delivery")) as system:
        messages = Stubs(system.channel("segment"), system.channel("delivery")).messages
        generated = (await messages.GetPushConfig(message_service_pb2.GetPushConfigRequest())).vapid_public_key
        assert len(unb64url(generated)) == 65 and unb64url(generated)[0] == 4
        await system.restart("delivery")  # same port and data dir
        assert (await messages.GetPushConfig(message_service_pb2.GetPushConfigRequest())).vapid_public_key == generated

    given = new_vapid_key()
    expected = ec.derive_private_key(int.from_bytes(unb64url(given), "big"), ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    async with serve_system(new_db_url, tmp_path / "given", names=("segment", "delivery"),
                            vapid_private_key=given) as system:
        messages = Stubs(system.channel("segment"), system.channel("delivery")).messages
        assert (await messages.GetPushConfig(message_service_pb2.GetPushConfigRequest())).vapid_public_key == b64url(
            expected)


@pytest.mark.parametrize("overrides, variable", [
    ({"vapid_private_key": "not-a-key"}, "HERALD_VAPID_PRIVATE_KEY"),
    ({"vapid_private_key": b64url(b"\xff" * 32)}, "HERALD_VAPID_PRIVATE_KEY"),  # not below the curve's order
    ({"vapid_subject": "herald"}, "HERALD_VAPID_SUBJECT"),
    ({"webhook_secret": "secret"}, "HERALD_WEBHOOK_SECRET"),
    ({"webhook_secret": "whsec_c2hvcnQ="}, "HERALD_WEBHOOK_SECRET"),
])
async def test_a_malformed_push_setting_is_named(push_system, overrides, variable):
    system, _, _ = push_system
    with pytest.raises(ConfigError, match=variable):
        Push.from_settings(replace(system.settings, **overrides),
                           SegmentClient(system.channel("segment")))
