"""Every RPC of the three services, fed empty and randomly malformed requests (oversized
lists and strings, unknown enum numbers, negative limits, garbage cursors, malformed filters,
broken templates), answers with a client status — never INTERNAL or UNKNOWN. The seed is
printed; HERALD_FUZZ_SEED replays a run."""

from __future__ import annotations

import asyncio
import os
import random

import grpc
from google.protobuf import struct_pb2

from harness import NOT_BUILT, serve_system, violations
from herald.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc
from herald.delivery.v1 import (delivery_service_pb2, delivery_service_pb2_grpc, message_service_pb2,
                                message_service_pb2_grpc)
from herald.segment.v1 import (directory_pb2, directory_service_pb2, directory_service_pb2_grpc,
                               segment_service_pb2, segment_service_pb2_grpc)

CASES_PER_METHOD = 12
SERVICES = [  # (service, module, stub class, service name)
    ("segment", directory_service_pb2, directory_service_pb2_grpc.DirectoryServiceStub, "DirectoryService"),
    ("segment", segment_service_pb2, segment_service_pb2_grpc.SegmentServiceStub, "SegmentService"),
    ("campaign", campaign_service_pb2, campaign_service_pb2_grpc.CampaignServiceStub, "CampaignService"),
    ("delivery", delivery_service_pb2, delivery_service_pb2_grpc.DeliveryServiceStub, "DeliveryService"),
    ("delivery", message_service_pb2, message_service_pb2_grpc.MessageServiceStub, "MessageService"),
]
FILTERS = [{"a": {"$bogus": 1}}, {"$and": 3}, {"id": {"$in": "x"}}, {"created_at": {"$gt": "nope"}},
           {"x": {"$gt": {"a": 1}}}, {}, {"status": ["a"]}, {"members": {"$in": [1, 2]}},
           {"teams": {"$contains": 5}}, {"$or": [{"$or": []}]}, {"target_id": {"$exists": "yes"}}]
STRINGS = ["", "x", "a" * 300, "\x00", "{{ receiver.name", "{{ nope }}", "{% for %}", "ü" * 10, "bad:cid:x",
           "a:b", "eyJrIjpbXX0", "!members-x"]
LISTS = [STRINGS[:3], ["x"] * 3, ["y"] * 10_001]
CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
                 grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
                 grpc.StatusCode.RESOURCE_EXHAUSTED}


def malform(message, rnd: random.Random, depth: int = 0) -> None:
    """Sets about half of the message's fields, recursively, to awkward values."""
    for field in message.DESCRIPTOR.fields:
        if rnd.random() < 0.5:
            continue
        name, repeated = field.name, field.is_repeated
        if field.message_type is not None:
            kind = field.message_type.full_name
            if kind == "google.protobuf.Struct":
                value = struct_pb2.Struct()
                value.update(rnd.choice(FILTERS))
                (getattr(message, name).add() if repeated else getattr(message, name)).CopyFrom(value)
            elif kind == "google.protobuf.Timestamp":
                if not repeated:
                    getattr(message, name).seconds = rnd.choice([0, 1, -10**10, 253_402_300_799])
            elif depth < 3:
                for _ in range(rnd.choice([1, 2]) if repeated else 1):
                    malform(getattr(message, name).add() if repeated else getattr(message, name), rnd, depth + 1)
        elif field.type == field.TYPE_STRING:
            if repeated:
                getattr(message, name).extend(rnd.choice(LISTS))
            else:
                setattr(message, name, rnd.choice(STRINGS))
        elif repeated:
            continue
        elif field.type in (field.TYPE_INT32, field.TYPE_INT64):
            setattr(message, name, rnd.choice([-1, 0, 1, 10**6, 2**31 - 1]))
        elif field.type == field.TYPE_ENUM:
            setattr(message, name, rnd.choice([0, 1, 2, 99, -1]))
        elif field.type == field.TYPE_BOOL:
            setattr(message, name, rnd.random() < 0.5)
        elif field.type == field.TYPE_DOUBLE:
            setattr(message, name, rnd.choice([-1.0, 1e308, float("nan")]))


UNARY_DEADLINE_S = 30.0  # a unary call answers within it, even on a loaded machine
STREAM_WINDOW_S = 3.0  # a stream still open after it is a valid watch waiting for news
# A stream that may stay open, and the unary call saying whether its request was valid.
WATCHES = {
    "WatchCampaign": lambda system, request: campaign_service_pb2_grpc.CampaignServiceStub(
        system.channel("campaign")).GetCampaign(campaign_service_pb2.GetCampaignRequest(id=request.id)),
    "WatchDelivery": lambda system, request: delivery_service_pb2_grpc.DeliveryServiceStub(
        system.channel("delivery")).GetDelivery(delivery_service_pb2.GetDeliveryRequest(
            campaign_id=request.campaign_id)),
}
OPEN = "still open"


def _subscription_is_valid(request) -> bool:
    """SubscribeEvents by DESIGN §10.1 (whether a sequence > 0 is in range depends on the log)."""
    return (1 <= len(request.user_ids) <= 1000
            and all(0 < len(user_id) <= 255 and "\x00" not in user_id for user_id in request.user_ids)
            and request.after_sequence >= 0 and set(request.types) <= {"channel.created", "message.new"})


# Streams without a unary call to ask: whether a request of theirs may stay open.
OPEN_WHEN_VALID = {"SubscribeEvents": _subscription_is_valid}


async def _call(method, stub, request) -> grpc.StatusCode | str:
    """The status the call ended with, or OPEN for a response stream still open after a while."""
    rpc = getattr(stub, method.name)
    try:
        if method.client_streaming:
            async def one():
                yield request
            await rpc(one(), timeout=UNARY_DEADLINE_S)
        elif method.server_streaming:
            async def drain():
                async for _ in rpc(request):
                    pass
            await asyncio.wait_for(drain(), STREAM_WINDOW_S)
        else:
            await rpc(request, timeout=UNARY_DEADLINE_S)
    except asyncio.TimeoutError:
        return OPEN
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _valid(system, method, request) -> bool:
    if method.name in OPEN_WHEN_VALID:
        return OPEN_WHEN_VALID[method.name](request)
    probe = WATCHES.get(method.name)
    if probe is None:
        return False
    try:
        await probe(system, request)
    except grpc.aio.AioRpcError:
        return False
    return True


def _full_name(method) -> str:
    return f"{method.containing_service.full_name}/{method.name}"


async def test_malformed_requests_get_client_errors_never_internal(new_db_url, tmp_path):
    seed = int(os.environ.get("HERALD_FUZZ_SEED") or random.randrange(1 << 30))
    print(f"HERALD_FUZZ_SEED={seed}")
    rnd = random.Random(seed)
    async with serve_system(new_db_url, tmp_path) as system:
        directory = directory_service_pb2_grpc.DirectoryServiceStub(system.channel("segment"))
        await directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(
            users=[directory_pb2.User(id="x"), directory_pb2.User(id="a:b")]))
        wrong, not_built_seen = [], set()
        for service, module, stub_class, name in SERVICES:
            stub = stub_class(system.channel(service))
            for method in module.DESCRIPTOR.services_by_name[name].methods:
                full_name = _full_name(method)
                request_class = getattr(module, method.input_type.name)
                for case in range(CASES_PER_METHOD):
                    request = request_class()
                    if case:
                        malform(request, rnd)
                    code = await _call(method, stub, request)
                    if full_name in NOT_BUILT:
                        not_built_seen.add(full_name)
                        if code != grpc.StatusCode.UNIMPLEMENTED:
                            wrong.append(f"{full_name} is listed as not built but answered {code}")
                    elif code == OPEN:
                        if not await _valid(system, method, request):
                            wrong.append(f"{full_name} stayed open for an invalid request {request}")
                    elif code not in CLIENT_ERRORS | {grpc.StatusCode.OK}:
                        wrong.append(f"{full_name} → {code.name} for {request}")
        assert not_built_seen == NOT_BUILT, f"listed as not built but not served: {NOT_BUILT - not_built_seen}"
        assert not wrong, "\n".join(wrong[:10])


async def test_a_nul_character_in_an_id_is_invalid_argument_naming_the_field(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path) as system:
        segments = segment_service_pb2_grpc.SegmentServiceStub(system.channel("segment"))
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
        deliveries = delivery_service_pb2_grpc.DeliveryServiceStub(system.channel("delivery"))
        for call, field in [
            (segments.DeleteSegment(segment_service_pb2.DeleteSegmentRequest(id="a\x00b")), "id"),
            (campaigns.GetCampaign(campaign_service_pb2.GetCampaignRequest(id="a\x00b")), "id"),
            (deliveries.StopDelivery(delivery_service_pb2.StopDeliveryRequest(campaign_id="\x00")), "campaign_id"),
        ]:
            try:
                await call
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
                assert violations(exc) == [field]
            else:
                raise AssertionError(f"a NUL in {field} was accepted")
