"""Input rules shared by the segment service's handlers (limits from DESIGN §4–7)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2, segment_service_pb2
from services.kit import reasons
from services.kit.endpoints import EndpointRefused, default_port, parse_endpoint
from services.kit.errors import InvalidArgument, Violations
from services.kit.fields import (check_channel_type, check_cid, check_id, check_id_list, check_text,
                                check_user_channel_spec)
from services.kit.filters import check_filter_size
from services.kit.limits import (MAX_DEVICES_PER_CALL, MAX_DEVICES_PER_USER, MAX_ENDPOINT, DEFAULT_RECIPIENT_BATCH, MAX_CHANNELS_PER_CALL, MAX_CID, MAX_ENSURE_SPECS,
                                 MAX_RECIPIENT_BATCH, MAX_SEGMENT_DESCRIPTION, MAX_SEGMENT_NAME,
                                 MAX_SEGMENTS_PER_AUDIENCE, MAX_TARGETS_PER_CALL, MAX_TEAM, MAX_USERS_PER_CALL)
from services.kit.protos import struct_to_dict
from services.segment_svc import reasons as segment_reasons
from services.segment_svc.convert import DEVICE_PROVIDER_WORDS, SEGMENT_TYPE_WORDS
from services.segment_svc.filters import audience_condition


def batch_size(v: Violations, value: int, field: str = "batch_size") -> int:
    if value < 0 or value > MAX_RECIPIENT_BATCH:
        v.add(field, f"must be between 0 and {MAX_RECIPIENT_BATCH} (0 = {DEFAULT_RECIPIENT_BATCH})")
        return DEFAULT_RECIPIENT_BATCH
    return value or DEFAULT_RECIPIENT_BATCH


# Stop listing violations after this many: a 10,000-item request should not echo 10,000 errors.
MAX_VIOLATIONS = 20

_Item = TypeVar("_Item")


def listed(v: Violations, items: Sequence[_Item], field: str, noun: str, limit: int, *,
           required: bool = True) -> Iterator[tuple[int, _Item]]:
    """Yields (index, item) of a list of 1..`limit` items (none when the list itself is bad),
    stopping once MAX_VIOLATIONS have been found."""
    if not items:
        if required:
            v.add(field, f"must list at least one {noun}")
        return
    if len(items) > limit:
        v.add(field, f"must list at most {limit} {noun}s (got {len(items)})")
        return
    for i, item in enumerate(items):
        if len(v.items) >= MAX_VIOLATIONS:
            return
        yield i, item


def check_users(v: Violations, users: Sequence[directory_pb2.User], *, required: bool) -> None:
    for i, user in listed(v, users, "users", "user", MAX_USERS_PER_CALL, required=required):
        check_id(v, user.id, f"users[{i}].id")


def check_channels(v: Violations, channels: Sequence[directory_pb2.Channel]) -> None:
    for i, channel in listed(v, channels, "channels", "channel", MAX_CHANNELS_PER_CALL):
        path = f"channels[{i}]"
        check_channel_type(v, channel.type, f"{path}.type")
        check_id(v, channel.id, f"{path}.id")
        if channel.cid:
            v.check(channel.cid == f"{channel.type}:{channel.id}", f"{path}.cid", "must be 'type:id' (or empty)")
        check_id(v, channel.created_by_id, f"{path}.created_by_id", required=False)
        check_text(v, channel.team, f"{path}.team", MAX_TEAM)
        for j, member in enumerate(channel.members):
            check_id(v, member.user_id, f"{path}.members[{j}].user_id")


def check_ensure(request: directory_service_pb2.EnsureChannelsRequest) -> None:
    v = Violations()
    check_id(v, request.campaign_id, "campaign_id")
    check_id(v, request.sender_id, "sender_id")
    v.check(request.sender_mode in common_pb2.SenderMode.values(), "sender_mode", "is not a known sender mode")
    v.check(request.sender_visibility in common_pb2.SenderVisibility.values(), "sender_visibility",
            "is not a known sender visibility")
    seen: dict[str, int] = {}
    for i, spec in listed(v, request.channels, "channels", "channel spec", MAX_ENSURE_SPECS):
        check_spec(v, spec, f"channels[{i}]")
        if spec.recipient_id in seen:
            v.add(f"channels[{i}].recipient_id", f"repeats channels[{seen[spec.recipient_id]}]")
        seen.setdefault(spec.recipient_id, i)
    v.raise_if_any()


def check_spec(v: Violations, spec: directory_service_pb2.ChannelSpec, path: str) -> None:
    check_id(v, spec.recipient_id, f"{path}.recipient_id", limit=MAX_CID)
    if spec.receiver_id and spec.cid:
        v.add(f"{path}.cid", "give receiver_id (user target) or cid (channel target), not both")
        return
    if spec.cid:
        check_cid(v, spec.cid, f"{path}.cid")
        return
    if check_id(v, spec.receiver_id, f"{path}.receiver_id"):
        check_user_channel_spec(v, spec, f"{path}.")


def require_segment_id(segment_id: str) -> None:
    v = Violations()
    check_id(v, segment_id, "id")
    v.raise_if_any()


def check_targets(segment_id: str, target_ids: Sequence[str]) -> None:
    v = Violations()
    check_id(v, segment_id, "id")
    check_id_list(v, target_ids, "target_ids", limit=MAX_TARGETS_PER_CALL, item_limit=MAX_CID)
    v.raise_if_any()


AudienceRequest = (segment_service_pb2.CountRecipientsRequest | segment_service_pb2.StreamRecipientsRequest
                   | segment_service_pb2.SplitRecipientsRequest)


def check_audience(request: AudienceRequest,
                   *, raise_now: bool = True) -> Violations:
    v = Violations()
    if request.segment_ids and request.user_ids:
        v.add("user_ids", "give segment_ids or user_ids, not both")
    elif request.segment_ids:
        check_id_list(v, request.segment_ids, "segment_ids", limit=MAX_SEGMENTS_PER_AUDIENCE)
    elif request.user_ids:
        check_id_list(v, request.user_ids, "user_ids", limit=MAX_USERS_PER_CALL)
    else:
        v.add("segment_ids", "give segment_ids or user_ids")
    check_id(v, request.sender_id, "sender_id", required=False)
    if raise_now:
        v.raise_if_any()
    return v


def filter_of(request: segment_service_pb2.CreateSegmentRequest | segment_service_pb2.UpdateSegmentRequest,
              ) -> dict[str, Any] | None:
    """The request's filter as a dict, None when absent; an empty filter is rejected."""
    if not request.HasField("filter"):
        return None
    check_filter_size(request.filter)
    value = struct_to_dict(request.filter)
    if not value:
        raise InvalidArgument("filter", "must not be empty (use all_users for every user; omit it for a "
                                        "manual segment)", reason=reasons.INVALID_FILTER)
    return value


def segment_fields(request: segment_service_pb2.CreateSegmentRequest) -> dict[str, Any]:
    v = Violations()
    check_id(v, request.id, "id", required=False)
    kind = SEGMENT_TYPE_WORDS.get(request.type)
    v.check(kind is not None, "type", "is required: SEGMENT_TYPE_USER or SEGMENT_TYPE_CHANNEL")
    check_text(v, request.name, "name", MAX_SEGMENT_NAME)
    check_text(v, request.description, "description", MAX_SEGMENT_DESCRIPTION)
    filter_dict = filter_of(request)
    if filter_dict is not None and request.all_users:
        v.add("all_users", "cannot be combined with filter")
    if filter_dict is not None and request.all_sender_channels:
        v.add("all_sender_channels", "cannot be combined with filter")
    if request.all_users and request.all_sender_channels:
        v.add("all_sender_channels", "cannot be combined with all_users")
    if request.all_users and kind == "channel":
        v.add("all_users", "is only for user segments")
    if request.all_sender_channels and kind == "user":
        v.add("all_sender_channels", "is only for channel segments")
    v.raise_if_any()
    assert kind is not None  # a missing type was reported above
    if filter_dict is not None:
        audience_condition(kind, filter_dict)  # a malformed filter fails now, not when sending
    return {"id": request.id, "type": kind, "name": request.name, "description": request.description,
            "filter": filter_dict, "all_users": request.all_users, "all_sender_channels": request.all_sender_channels}


def segment_changes(request: segment_service_pb2.UpdateSegmentRequest) -> dict[str, Any]:
    v = Violations()
    check_id(v, request.id, "id")
    changes: dict[str, Any] = {}
    if request.HasField("name"):
        check_text(v, request.name, "name", MAX_SEGMENT_NAME)
        changes["name"] = request.name
    if request.HasField("description"):
        check_text(v, request.description, "description", MAX_SEGMENT_DESCRIPTION)
        changes["description"] = request.description
    v.raise_if_any()
    filter_dict = filter_of(request)
    if filter_dict is not None:
        changes["filter"] = filter_dict
    return changes


# ---------------------------------------------------------------------------------------------
# Devices

WEBPUSH_KEYS = {"p256dh": 65, "auth": 16}  # key → decoded length in bytes (RFC 8291)


@dataclass(frozen=True)
class DeviceInput:
    """A valid device of an UpsertDevices request; `index` is its position there, for errors
    found after validation (an unknown user, a host resolving to a private address)."""

    index: int
    user_id: str
    id: str
    provider: str
    endpoint: str
    host: str
    port: int
    keys: dict[str, Any]


def derived_device_id(endpoint: str) -> str:
    """The id of a device upserted without one: the same endpoint always gets the same id."""
    return "ep_" + hashlib.sha256(endpoint.encode()).hexdigest()[:32]


def devices_to_store(request: directory_service_pb2.UpsertDevicesRequest, *,
                     allow_private: bool) -> list[DeviceInput]:
    """The request's devices, checked; a repeated user_id + id keeps the last, in the place of the first."""
    v = Violations()
    found: dict[tuple[str, str], DeviceInput] = {}
    for i, device in listed(v, request.devices, "devices", "device", MAX_DEVICES_PER_CALL):
        item = check_device(v, device, i, allow_private=allow_private)
        if item is not None:
            found[(item.user_id, item.id)] = item
    for user_id, count in Counter(user_id for user_id, _ in found).items():
        if count > MAX_DEVICES_PER_USER:
            v.add("devices", f"gives user {user_id!r} {count} devices; a user keeps at most {MAX_DEVICES_PER_USER}")
    v.raise_if_any()
    return list(found.values())


def check_device(v: Violations, device: directory_pb2.Device, index: int, *,
                 allow_private: bool) -> DeviceInput | None:
    path = f"devices[{index}]"
    before = len(v.items)
    check_id(v, device.user_id, f"{path}.user_id")
    check_id(v, device.id, f"{path}.id", required=False)
    provider = DEVICE_PROVIDER_WORDS.get(device.provider)
    v.check(provider is not None, f"{path}.provider", "is required: DEVICE_PROVIDER_WEBPUSH or DEVICE_PROVIDER_HTTP")
    host, port = check_endpoint(v, device.endpoint, f"{path}.endpoint", allow_private=allow_private)
    keys = struct_to_dict(device.keys)
    if provider == "webpush":
        check_webpush_keys(v, keys, f"{path}.keys")
    elif provider == "http":
        v.check(not keys, f"{path}.keys", "must be empty for the http provider (it is signed with the webhook secret)")
    if len(v.items) > before or provider is None:
        return None
    return DeviceInput(index, device.user_id, device.id or derived_device_id(device.endpoint), provider,
                       device.endpoint, host, port, keys)


def check_endpoint(v: Violations, endpoint: str, field: str, *, allow_private: bool) -> tuple[str, int]:
    """(host, port) of a valid endpoint URL; ("", 0) after recording why it is not one."""
    if not endpoint:
        v.add(field, "is required")
        return "", 0
    if not check_text(v, endpoint, field, MAX_ENDPOINT):
        return "", 0
    try:
        parts = parse_endpoint(endpoint, allow_private=allow_private)
    except EndpointRefused as refused:
        v.add(field, str(refused), segment_reasons.ENDPOINT_NOT_ALLOWED)
        return "", 0
    assert parts.hostname is not None  # parse_endpoint refuses a URL without a host
    return parts.hostname, default_port(parts)


def check_webpush_keys(v: Violations, keys: dict[str, Any], field: str) -> None:
    """The keys of a browser's PushSubscription: p256dh a P-256 public key (uncompressed point),
    auth a 16-byte secret, both base64url (padding optional)."""
    unknown = sorted(set(keys) - set(WEBPUSH_KEYS))
    if unknown:
        v.add(field, f"has unknown key {unknown[0]!r} (web push keys are p256dh and auth)")
    for name, size in WEBPUSH_KEYS.items():
        raw = _base64url(keys.get(name))
        if raw is None or len(raw) != size:
            v.add(f"{field}.{name}", f"is required: base64url of {size} bytes")
        elif name == "p256dh" and not _is_p256_point(raw):
            v.add(f"{field}.{name}", "is not an uncompressed P-256 public key")


def _base64url(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_p256_point(raw: bytes) -> bool:
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        return False
    return raw[0] == 4  # uncompressed, as browsers give it and RFC 8291 requires
