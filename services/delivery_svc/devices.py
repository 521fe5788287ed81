"""The delivery service's calls to the directory for push: receivers' devices, senders' names,
and forgetting a device its push service says is gone.

Every call carries a deadline and retries UNAVAILABLE a few times (kit.retry); a segment service
that stays unreachable raises grpc.aio.AioRpcError, for the caller to try the batch again later.
"""

from __future__ import annotations

from collections.abc import Iterable

from herald.segment.v1 import directory_pb2, directory_service_pb2, directory_service_pb2_grpc
from services.kit.retry import call_idempotent

# ListDevices and GetUsers take at most this many user ids (DirectoryService's limits).
LIST_DEVICES_CHUNK = 1_000
GET_USERS_CHUNK = 10_000
CALL_DEADLINE_S = 10.0
ATTEMPTS = 3


class DeviceDirectory:
    """Typed calls over DirectoryService for push."""

    def __init__(self, directory: directory_service_pb2_grpc.DirectoryServiceStub) -> None:
        self.directory = directory

    async def devices_of(self, user_ids: Iterable[str]) -> dict[str, list[directory_pb2.Device]]:
        """The devices of the users that have any, by user id: one ListDevices call per 1,000 users."""
        ids = list(dict.fromkeys(user_ids))
        found: dict[str, list[directory_pb2.Device]] = {}
        for start in range(0, len(ids), LIST_DEVICES_CHUNK):
            request = directory_service_pb2.ListDevicesRequest(user_ids=ids[start:start + LIST_DEVICES_CHUNK])
            response = await call_idempotent(self.directory.ListDevices, request, timeout=CALL_DEADLINE_S,
                                             attempts=ATTEMPTS)
            for device in response.devices:
                found.setdefault(device.user_id, []).append(device)
        return found

    async def names_of(self, user_ids: Iterable[str]) -> dict[str, str]:
        """The names of the users that exist, by user id."""
        ids = list(dict.fromkeys(user_ids))
        names: dict[str, str] = {}
        for start in range(0, len(ids), GET_USERS_CHUNK):
            request = directory_service_pb2.GetUsersRequest(ids=ids[start:start + GET_USERS_CHUNK])
            response = await call_idempotent(self.directory.GetUsers, request, timeout=CALL_DEADLINE_S,
                                             attempts=ATTEMPTS)
            names.update((user.id, user.name) for user in response.users)
        return names

    async def forget(self, device: directory_pb2.Device) -> None:
        request = directory_service_pb2.DeleteDevicesRequest(user_id=device.user_id, ids=[device.id])
        await call_idempotent(self.directory.DeleteDevices, request, timeout=CALL_DEADLINE_S, attempts=ATTEMPTS)
