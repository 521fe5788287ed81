"""DirectoryService devices: UpsertDevices, ListDevices, DeleteDevices over gRPC, their input
rules (fields named, limits, endpoints of public hosts only) and their life with their user."""

from __future__ import annotations

import base64
import os
from dataclasses import replace

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness import client_channel, serving, test_settings
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, directory_service_pb2_grpc
from services.kit.db import make_engine
from services.segment_svc.app import SegmentApp

from .conftest import expect_error

WEBPUSH = directory_pb2.DEVICE_PROVIDER_WEBPUSH
HTTP = directory_pb2.DEVICE_PROVIDER_HTTP
PUBLIC = "https://93.184.216.34"  # a public address: no DNS needed


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def browser_keys() -> dict[str, str]:
    """Keys as a browser's PushSubscription.toJSON() gives them."""
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"p256dh": b64url(point), "auth": b64url(os.urandom(16))}


def webpush(user_id: str, endpoint: str = f"{PUBLIC}/push/abc", id: str = "", **keys) -> directory_pb2.Device:
    device = directory_pb2.Device(id=id, user_id=user_id, provider=WEBPUSH, endpoint=endpoint)
    device.keys.update(keys or browser_keys())
    return device


def http(user_id: str, endpoint: str = f"{PUBLIC}/hook", id: str = "") -> directory_pb2.Device:
    return directory_pb2.Device(id=id, user_id=user_id, provider=HTTP, endpoint=endpoint)


async def upsert(svc, *devices: directory_pb2.Device) -> list[directory_pb2.Device]:
    return list((await svc.directory.UpsertDevices(ds.UpsertDevicesRequest(devices=devices))).devices)


async def listed(svc, *user_ids: str) -> list[tuple[str, str]]:
    response = await svc.directory.ListDevices(ds.ListDevicesRequest(user_ids=user_ids))
    return [(d.user_id, d.id) for d in response.devices]


async def test_devices_are_stored_listed_replaced_and_deleted(svc):
    await svc.users("ann", "bob")
    keys = browser_keys()
    first = await upsert(svc, webpush("ann", id="laptop", **keys), http("ann"), http("bob", f"{PUBLIC}/bob"))
    assert [(d.user_id, d.id) for d in first][:1] == [("ann", "laptop")]
    derived = first[1].id
    assert derived.startswith("ep_") and first[2].id != derived
    assert dict(first[0].keys) == keys and first[0].provider == WEBPUSH
    assert first[0].created_at == first[0].updated_at and first[0].created_at.seconds > 0

    # The same endpoint without an id finds the same device; an upsert replaces what it holds.
    again = await upsert(svc, http("ann"), webpush("ann", f"{PUBLIC}/push/new", id="laptop"))
    assert again[0].id == derived
    assert again[1].endpoint == f"{PUBLIC}/push/new" and dict(again[1].keys) != keys
    assert again[1].created_at == first[0].created_at
    assert await listed(svc, "bob", "ann", "nobody") == [("ann", derived), ("ann", "laptop"), ("bob", first[2].id)]

    deleted = await svc.directory.DeleteDevices(ds.DeleteDevicesRequest(user_id="ann", ids=["laptop", "laptop", "x"]))
    assert deleted.deleted_count == 1
    assert await listed(svc, "ann") == [("ann", derived)]
    # Another user's device of the same id is not touched.
    assert (await svc.directory.DeleteDevices(ds.DeleteDevicesRequest(user_id="ann", ids=[first[2].id]))
            ).deleted_count == 0


async def test_deleting_a_user_deletes_its_devices(svc):
    await svc.users("ann", "bob")
    await upsert(svc, http("ann"), http("bob"))
    await svc.directory.DeleteUsers(ds.DeleteUsersRequest(ids=["ann"]))
    assert [user for user, _ in await listed(svc, "ann", "bob")] == ["bob"]
    # A user stored again under the same id starts without devices.
    await svc.users("ann")
    assert await listed(svc, "ann") == []


async def test_a_user_keeps_the_most_recently_upserted_devices(svc):
    await svc.users("ann")
    await upsert(svc, *(http("ann", f"{PUBLIC}/old/{i}", id=f"old{i:02d}") for i in range(20)))
    await upsert(svc, *(http("ann", f"{PUBLIC}/mid/{i}", id=f"mid{i}") for i in range(5)))
    await upsert(svc, http("ann", id="new0"), http("ann", f"{PUBLIC}/x", id="new1"), http("ann", id="old05"))
    ids = [device_id for _, device_id in await listed(svc, "ann")]
    assert len(ids) == 25
    # This call's three stay, the five of the call before stay, and the oldest call's remaining
    # nineteen lose two to make room (old05 was upserted again, so it is new).
    assert {"new0", "new1", "old05", *(f"mid{i}" for i in range(5))} <= set(ids)
    assert len([i for i in ids if i.startswith("old") and i != "old05"]) == 17


async def test_device_limits_name_the_field(svc):
    await svc.users("ann", *(f"u{i:02d}" for i in range(40)))
    await expect_error(upsert(svc), grpc.StatusCode.INVALID_ARGUMENT, "devices")
    await expect_error(upsert(svc, *(http("ann", id=f"d{i}") for i in range(1001))),
                       grpc.StatusCode.INVALID_ARGUMENT, "devices")
    await expect_error(upsert(svc, *(http("ann", id=f"d{i}") for i in range(26))),
                       grpc.StatusCode.INVALID_ARGUMENT, "devices")
    at_limit = await upsert(svc, *(http(f"u{i // 25:02d}", id=f"d{i % 25}") for i in range(1000)))
    assert len(at_limit) == 1000

    list_devices, delete_devices = svc.directory.ListDevices, svc.directory.DeleteDevices
    await expect_error(list_devices(ds.ListDevicesRequest()), grpc.StatusCode.INVALID_ARGUMENT, "user_ids")
    await expect_error(list_devices(ds.ListDevicesRequest(user_ids=[f"u{i}" for i in range(1001)])),
                       grpc.StatusCode.INVALID_ARGUMENT, "user_ids")
    assert len(await listed(svc, *(f"u{i:02d}" for i in range(40)), *(f"x{i}" for i in range(960)))) == 1000
    await expect_error(list_devices(ds.ListDevicesRequest(user_ids=["ann", "a\x00"])),
                       grpc.StatusCode.INVALID_ARGUMENT, "user_ids[1]")
    await expect_error(delete_devices(ds.DeleteDevicesRequest(ids=["d1"])), grpc.StatusCode.INVALID_ARGUMENT,
                       "user_id")
    await expect_error(delete_devices(ds.DeleteDevicesRequest(user_id="ann")), grpc.StatusCode.INVALID_ARGUMENT, "ids")
    await expect_error(delete_devices(ds.DeleteDevicesRequest(user_id="ann", ids=[f"d{i}" for i in range(1001)])),
                       grpc.StatusCode.INVALID_ARGUMENT, "ids")
    deleted = await delete_devices(ds.DeleteDevicesRequest(user_id="u00", ids=[f"d{i}" for i in range(1000)]))
    assert deleted.deleted_count == 25


@pytest.mark.parametrize("device, field, reason", [
    (http(""), "devices[0].user_id", "INVALID_ARGUMENT"),
    (http("a\x00b"), "devices[0].user_id", "INVALID_ARGUMENT"),
    (http("ann", id="x" * 256), "devices[0].id", "INVALID_ARGUMENT"),
    (directory_pb2.Device(user_id="ann", endpoint=f"{PUBLIC}/x"), "devices[0].provider", "INVALID_ARGUMENT"),
    (directory_pb2.Device(user_id="ann", provider=7, endpoint=f"{PUBLIC}/x"), "devices[0].provider",
     "INVALID_ARGUMENT"),
    (http("ann", ""), "devices[0].endpoint", "INVALID_ARGUMENT"),
    (http("ann", f"{PUBLIC}/a\x00b"), "devices[0].endpoint", "INVALID_ARGUMENT"),
    (http("ann", f"{PUBLIC}/" + "x" * 2048), "devices[0].endpoint", "INVALID_ARGUMENT"),
    (http("ann", "not a url"), "devices[0].endpoint", "ENDPOINT_NOT_ALLOWED"),
    (http("ann", "ftp://93.184.216.34/x"), "devices[0].endpoint", "ENDPOINT_NOT_ALLOWED"),
    (http("ann", "http://93.184.216.34/x"), "devices[0].endpoint", "ENDPOINT_NOT_ALLOWED"),
    (http("ann", "https://user:pw@93.184.216.34/x"), "devices[0].endpoint", "ENDPOINT_NOT_ALLOWED"),
    (http("ann", "https:///path"), "devices[0].endpoint", "ENDPOINT_NOT_ALLOWED"),
    (http("ann", "https://127.0.0.1/x"), "devices[0].endpoint", "ENDPOINT_NOT_ALLOWED"),
    (http("ann", "https://10.1.2.3:8443/x"), "devices[0].endpoint", "ENDPOINT_NOT_ALLOWED"),
    (http("ann", "https://169.254.169.254/latest"), "devices[0].endpoint", "ENDPOINT_NOT_ALLOWED"),
    (http("ann", "https://[::1]/x"), "devices[0].endpoint", "ENDPOINT_NOT_ALLOWED"),
    (http("ann", "https://[::ffff:192.168.0.1]/x"), "devices[0].endpoint", "ENDPOINT_NOT_ALLOWED"),
    (http("ann", "https://localhost:9/x"), "devices[0].endpoint", "ENDPOINT_NOT_ALLOWED"),  # resolves to loopback
    (webpush("ann", p256dh="AAAA", auth=b64url(os.urandom(16))), "devices[0].keys.p256dh", "INVALID_ARGUMENT"),
    (webpush("ann", p256dh=b64url(b"\x04" + bytes(64)), auth=b64url(os.urandom(16))), "devices[0].keys.p256dh",
     "INVALID_ARGUMENT"),  # 65 bytes, but not a point of the curve
    (webpush("ann", p256dh=browser_keys()["p256dh"]), "devices[0].keys.auth", "INVALID_ARGUMENT"),
    (webpush("ann", p256dh=browser_keys()["p256dh"], auth="*not base64*"), "devices[0].keys.auth",
     "INVALID_ARGUMENT"),
    (webpush("ann", **browser_keys(), extra="x"), "devices[0].keys", "INVALID_ARGUMENT"),
    (webpush("ann", **{"p256dh": browser_keys()["p256dh"], "auth": 16}), "devices[0].keys.auth",
     "INVALID_ARGUMENT"),
    (http("nobody"), "devices[0].user_id", "USER_NOT_FOUND"),
])
async def test_a_bad_device_is_refused_naming_its_field(svc, device, field, reason):
    await svc.users("ann")
    exc = await expect_error(upsert(svc, http("ann"), device), grpc.StatusCode.INVALID_ARGUMENT,
                             field.replace("[0]", "[1]"), reason=reason)
    assert "\x00" not in exc.details()
    assert await listed(svc, "ann") == []


async def test_an_http_device_takes_no_keys(svc):
    await svc.users("ann")
    device = http("ann")
    device.keys.update({"secret": "x"})
    await expect_error(upsert(svc, device), grpc.StatusCode.INVALID_ARGUMENT, "devices[0].keys")


@pytest.fixture
async def svc_allowing_private(new_db_url, tmp_path):
    url = await new_db_url("segment")
    settings = replace(test_settings(tmp_path), segment_db_url=url, push_allow_private=True)
    async with serving(SegmentApp(settings, make_engine(url)), settings) as running:
        channel = client_channel(running.port)
        try:
            yield directory_service_pb2_grpc.DirectoryServiceStub(channel)
        finally:
            await channel.close()


async def test_private_and_plain_http_endpoints_when_allowed(svc_allowing_private):
    directory = svc_allowing_private
    await directory.UpsertUsers(ds.UpsertUsersRequest(users=[directory_pb2.User(id="ann")]))
    devices = [http("ann", "http://127.0.0.1:8080/hook"), http("ann", "https://localhost/x"),
               webpush("ann", "http://10.0.0.5/push")]
    stored = (await directory.UpsertDevices(ds.UpsertDevicesRequest(devices=devices))).devices
    assert [d.endpoint for d in stored] == [d.endpoint for d in devices]
    # Still URLs of http or https, without credentials.
    for endpoint in ("ftp://127.0.0.1/x", "http://u:p@127.0.0.1/x"):
        await expect_error(directory.UpsertDevices(ds.UpsertDevicesRequest(devices=[http("ann", endpoint)])),
                           grpc.StatusCode.INVALID_ARGUMENT, "devices[0].endpoint", reason="ENDPOINT_NOT_ALLOWED")
