"""The delivery service's calls to the segment service (SegmentService, DirectoryService).

Every call carries its deadline; the idempotent unary ones retry UNAVAILABLE a few times
(services.kit.retry). A recipient stream that breaks is resumed by the run from its checkpoint
(`is_resumable` says after which errors).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

import grpc

from herald.campaign.v1 import campaign_pb2
from herald.segment.v1 import (directory_pb2, directory_service_pb2, directory_service_pb2_grpc,
                               segment_service_pb2, segment_service_pb2_grpc)
from services.kit.limits import MAX_DEVICE_USERS, MAX_USERS_PER_CALL
from services.kit.retry import call_idempotent, is_unavailable

CALL_DEADLINE_S = 60.0
# A stream of millions of recipients takes a while; an expired deadline resumes from the cursor.
STREAM_DEADLINE_S = 3600.0
# Push's calls are retried by the dispatcher batch by batch: a short deadline and few attempts.
PUSH_CALL_DEADLINE_S = 10.0
PUSH_CALL_ATTEMPTS = 3


def is_resumable(exc: grpc.aio.AioRpcError) -> bool:
    """The errors after which a run resumes from its checkpoint instead of stopping."""
    return exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED or is_unavailable(exc)


class SegmentClient:
    """Typed calls over the segment service's stubs: the engine's (recipients, channels) and
    push's (receivers' devices, senders' names, forgetting a gone device)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._segments = segment_service_pb2_grpc.SegmentServiceStub(channel)
        self._directory = directory_service_pb2_grpc.DirectoryServiceStub(channel)

    async def get_user(self, user_id: str) -> directory_pb2.User | None:
        return (await self.get_users([user_id])).get(user_id)

    async def get_users(self, user_ids: Sequence[str]) -> dict[str, directory_pb2.User]:
        """The users that exist among `user_ids` (at most MAX_USERS_PER_CALL), by id."""
        response = await call_idempotent(self._directory.GetUsers,
                                         directory_service_pb2.GetUsersRequest(ids=list(user_ids)),
                                         timeout=CALL_DEADLINE_S)
        return {user.id: user for user in response.users}

    async def count_recipients(self, campaign: campaign_pb2.Campaign) -> int:
        response = await call_idempotent(self._segments.CountRecipients, segment_service_pb2.CountRecipientsRequest(
            segment_ids=campaign.segment_ids, user_ids=campaign.user_ids, sender_id=campaign.sender_id),
            timeout=CALL_DEADLINE_S)
        return response.count

    async def split_recipients(self, campaign: campaign_pb2.Campaign, parts: int) -> list[str]:
        """Boundaries cutting the campaign's audience into at most `parts` ranges of target ids."""
        response = await call_idempotent(self._segments.SplitRecipients, segment_service_pb2.SplitRecipientsRequest(
            segment_ids=campaign.segment_ids, user_ids=campaign.user_ids, sender_id=campaign.sender_id, parts=parts),
            timeout=CALL_DEADLINE_S)
        return list(response.boundaries)

    def stream_recipients(self, campaign: campaign_pb2.Campaign, cursor: str, batch_size: int,
                          last: str = "") -> AsyncIterator[segment_service_pb2.StreamRecipientsResponse]:
        """The campaign's recipients after `cursor` (through `last`, when given), batch by batch
        (the call itself: cancelling the task that reads it cancels it)."""
        request = segment_service_pb2.StreamRecipientsRequest(
            segment_ids=campaign.segment_ids, user_ids=campaign.user_ids, sender_id=campaign.sender_id,
            cursor=cursor, batch_size=batch_size, last_target_id=last)
        return self._segments.StreamRecipients(request, timeout=STREAM_DEADLINE_S)

    async def ensure_channels(self, campaign: campaign_pb2.Campaign, specs: Sequence[directory_service_pb2.ChannelSpec],
                              *, dry_run: bool = False, scope: str = "") -> directory_service_pb2.EnsureChannelsResponse:
        """Finds or creates each spec's channel; idempotent per (campaign, recipient) on the
        segment side, so a retried or replayed call answers what the first one did. With
        `dry_run` (a preview), what it would find or create, with nothing written. `scope` (a test
        send's id) keys the outcomes instead of the campaign id: a test send's never become the
        campaign's own (its later run finds the channel, it does not count it as created)."""
        request = directory_service_pb2.EnsureChannelsRequest(
            campaign_id=scope or campaign.id, sender_id=campaign.sender_id, create_channels=campaign.create_channels,
            sender_mode=campaign.sender_mode, sender_visibility=campaign.sender_visibility,
            show_channels=campaign.show_channels, channels=specs, dry_run=dry_run)
        return await call_idempotent(self._directory.EnsureChannels, request, timeout=CALL_DEADLINE_S)

    # --- push ---------------------------------------------------------------------------------

    async def devices_of(self, user_ids: Iterable[str]) -> dict[str, list[directory_pb2.Device]]:
        """The devices of the users that have any, by user id: one ListDevices call per page of users."""
        ids = list(dict.fromkeys(user_ids))
        found: dict[str, list[directory_pb2.Device]] = {}
        for start in range(0, len(ids), MAX_DEVICE_USERS):
            request = directory_service_pb2.ListDevicesRequest(user_ids=ids[start:start + MAX_DEVICE_USERS])
            response = await call_idempotent(self._directory.ListDevices, request, timeout=PUSH_CALL_DEADLINE_S,
                                             attempts=PUSH_CALL_ATTEMPTS)
            for device in response.devices:
                found.setdefault(device.user_id, []).append(device)
        return found

    async def names_of(self, user_ids: Iterable[str]) -> dict[str, str]:
        """The names of the users that exist, by user id."""
        ids = list(dict.fromkeys(user_ids))
        names: dict[str, str] = {}
        for start in range(0, len(ids), MAX_USERS_PER_CALL):
            request = directory_service_pb2.GetUsersRequest(ids=ids[start:start + MAX_USERS_PER_CALL])
            response = await call_idempotent(self._directory.GetUsers, request, timeout=PUSH_CALL_DEADLINE_S,
                                             attempts=PUSH_CALL_ATTEMPTS)
            names.update((user.id, user.name) for user in response.users)
        return names

    async def forget_device(self, device: directory_pb2.Device) -> None:
        request = directory_service_pb2.DeleteDevicesRequest(user_id=device.user_id, ids=[device.id])
        await call_idempotent(self._directory.DeleteDevices, request, timeout=PUSH_CALL_DEADLINE_S,
                              attempts=PUSH_CALL_ATTEMPTS)
