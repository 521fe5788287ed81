"""gRPC handlers of the segment service: parse and validate, call the logic, convert the result.

Calls that write take SQLite's one writer in turns (kit.db.write_transaction) instead of holding
a pooled connection while SQLite's busy handler sleeps, which starved the reads (GetUsers,
CountRecipients, StreamRecipients) of connections while a hundred campaigns ensured channels at
once: urgent for the calls a client waits on, in turn for the bulk ones (EnsureChannels' batches
of a sending campaign, ImportUsers' chunks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.segment.v1 import (directory_service_pb2, directory_service_pb2_grpc, segment_service_pb2,
                               segment_service_pb2_grpc)
from services.kit.db import transaction, utcnow, write_transaction
from services.kit.errors import InvalidArgument, Violations
from services.kit.fields import check_id, check_id_list
from services.kit.limits import MAX_AUDIENCE_PARTS, MAX_CID, MAX_DEVICE_IDS, MAX_DEVICE_USERS, MAX_USERS_PER_CALL
from services.segment_svc import audience, devices, directory, ensure, queries, segments, validate
from services.segment_svc.convert import ensured_message, segment_message
from services.segment_svc.sizes import SizeWorker
from services.kit.tracing import bind_campaign

Sessions = async_sessionmaker[AsyncSession]


class DirectoryServiceServicer(directory_service_pb2_grpc.DirectoryServiceServicer):
    """Handlers of herald.segment.v1.DirectoryService."""

    def __init__(self, sessions: Sessions, sizes: SizeWorker, *, push_allow_private: bool = False) -> None:
        self.sessions = sessions
        self.sizes = sizes
        self.push_allow_private = push_allow_private

    async def UpsertUsers(self, request: directory_service_pb2.UpsertUsersRequest,
                          context: grpc.aio.ServicerContext) -> directory_service_pb2.UpsertUsersResponse:
        v = Violations()
        validate.check_users(v, request.users, required=True)
        v.raise_if_any()
        async with write_transaction(self.sessions, urgent=True) as session:
            users = await directory.upsert_users(session, request.users)
        self.sizes.poke()
        return directory_service_pb2.UpsertUsersResponse(users=users)

    async def GetUsers(self, request: directory_service_pb2.GetUsersRequest,
                       context: grpc.aio.ServicerContext) -> directory_service_pb2.GetUsersResponse:
        v = Violations()
        check_id_list(v, request.ids, "ids", limit=MAX_USERS_PER_CALL)
        v.raise_if_any()
        async with transaction(self.sessions) as session:
            found = await directory.get_users(session, request.ids)
        missing = [i for i in dict.fromkeys(request.ids) if i not in found]
        return directory_service_pb2.GetUsersResponse(users=list(found.values()), missing_ids=missing)

    async def QueryUsers(self, request: directory_service_pb2.QueryUsersRequest,
                         context: grpc.aio.ServicerContext) -> directory_service_pb2.QueryUsersResponse:
        async with transaction(self.sessions) as session:
            users, pager = await queries.query_users(session, request)
        return directory_service_pb2.QueryUsersResponse(users=users, next=pager.next, prev=pager.prev)

    async def DeleteUsers(self, request: directory_service_pb2.DeleteUsersRequest,
                          context: grpc.aio.ServicerContext) -> directory_service_pb2.DeleteUsersResponse:
        v = Violations()
        check_id_list(v, request.ids, "ids", limit=MAX_USERS_PER_CALL)
        v.raise_if_any()
        async with write_transaction(self.sessions, urgent=True) as session:
            deleted = await directory.delete_users(session, request.ids)
        self.sizes.poke()
        return directory_service_pb2.DeleteUsersResponse(deleted_count=deleted)

    async def ImportUsers(self, request_iterator: AsyncIterator[directory_service_pb2.ImportUsersRequest],
                          context: grpc.aio.ServicerContext) -> directory_service_pb2.ImportUsersResponse:
        """Each chunk is stored in its own transaction: memory, WAL growth and write-lock time
        stay bounded however long the stream. A bad chunk ends the call with INVALID_ARGUMENT;
        the chunks before it are kept (the error says how many users that was)."""
        imported = 0
        chunk_no = 0
        async for chunk in request_iterator:
            v = Violations()
            validate.check_users(v, chunk.users, required=False)
            if v:
                raise InvalidArgument(violations=[
                    type(item)(item.field, f"{item.description} (chunk {chunk_no}; {imported} users "
                                           f"imported before it)", item.reason) for item in v.items])
            if chunk.users:
                async with write_transaction(self.sessions) as session:
                    imported += len(await directory.store_users(session, chunk.users))
                self.sizes.poke()
            chunk_no += 1
        return directory_service_pb2.ImportUsersResponse(imported_count=imported)

    async def UpsertChannels(self, request: directory_service_pb2.UpsertChannelsRequest,
                             context: grpc.aio.ServicerContext) -> directory_service_pb2.UpsertChannelsResponse:
        v = Violations()
        validate.check_channels(v, request.channels)
        v.raise_if_any()
        async with write_transaction(self.sessions, urgent=True) as session:
            channels = await directory.upsert_channels(session, request.channels)
        self.sizes.poke()
        return directory_service_pb2.UpsertChannelsResponse(channels=channels)

    async def QueryChannels(self, request: directory_service_pb2.QueryChannelsRequest,
                            context: grpc.aio.ServicerContext) -> directory_service_pb2.QueryChannelsResponse:
        async with transaction(self.sessions) as session:
            channels, pager = await queries.query_channels(session, request)
        return directory_service_pb2.QueryChannelsResponse(channels=channels, next=pager.next, prev=pager.prev)

    async def EnsureChannels(self, request: directory_service_pb2.EnsureChannelsRequest,
                             context: grpc.aio.ServicerContext) -> directory_service_pb2.EnsureChannelsResponse:
        bind_campaign(request.campaign_id)
        validate.check_ensure(request)
        begin = transaction if request.dry_run else write_transaction  # a dry run (a preview) writes nothing
        async with begin(self.sessions) as session:
            ensured = await ensure.ensure_channels(session, request)
        if ensured.channels_changed:
            self.sizes.poke()
        return directory_service_pb2.EnsureChannelsResponse(channels=[
            ensured_message(o.recipient_id, o.cid, o.created, o.skip_reason, o.channel.row if o.channel else None,
                            o.channel.members if o.channel else {},
                            existed=o.channel is not None and not o.channel.created_now)
            for o in ensured.outcomes])

    async def UpsertDevices(self, request: directory_service_pb2.UpsertDevicesRequest,
                            context: grpc.aio.ServicerContext) -> directory_service_pb2.UpsertDevicesResponse:
        found = validate.devices_to_store(request, allow_private=self.push_allow_private)
        await devices.check_hosts(found, allow_private=self.push_allow_private)  # DNS: before the transaction
        async with write_transaction(self.sessions, urgent=True) as session:
            stored = await devices.upsert_devices(session, found, utcnow())
        return directory_service_pb2.UpsertDevicesResponse(devices=stored)

    async def ListDevices(self, request: directory_service_pb2.ListDevicesRequest,
                          context: grpc.aio.ServicerContext) -> directory_service_pb2.ListDevicesResponse:
        v = Violations()
        validate.check_id_list(v, request.user_ids, "user_ids", limit=MAX_DEVICE_USERS)
        v.raise_if_any()
        async with transaction(self.sessions) as session:
            found = await devices.list_devices(session, request.user_ids)
        return directory_service_pb2.ListDevicesResponse(devices=found)

    async def DeleteDevices(self, request: directory_service_pb2.DeleteDevicesRequest,
                            context: grpc.aio.ServicerContext) -> directory_service_pb2.DeleteDevicesResponse:
        v = Violations()
        check_id(v, request.user_id, "user_id")
        validate.check_id_list(v, request.ids, "ids", limit=MAX_DEVICE_IDS)
        v.raise_if_any()
        async with write_transaction(self.sessions, urgent=True) as session:
            deleted = await devices.delete_devices(session, request.user_id, request.ids)
        return directory_service_pb2.DeleteDevicesResponse(deleted_count=deleted)


class SegmentServiceServicer(segment_service_pb2_grpc.SegmentServiceServicer):
    """Handlers of herald.segment.v1.SegmentService."""

    def __init__(self, sessions: Sessions, sizes: SizeWorker) -> None:
        self.sessions = sessions
        self.sizes = sizes

    async def CreateSegment(self, request: segment_service_pb2.CreateSegmentRequest,
                            context: grpc.aio.ServicerContext) -> segment_service_pb2.CreateSegmentResponse:
        fields = validate.segment_fields(request)
        async with write_transaction(self.sessions, urgent=True) as session:
            row = await segments.create_segment(session, **fields)
        if segments.is_computed(row):
            self.sizes.poke()
        return segment_service_pb2.CreateSegmentResponse(segment=segment_message(row._mapping))

    async def GetSegment(self, request: segment_service_pb2.GetSegmentRequest,
                         context: grpc.aio.ServicerContext) -> segment_service_pb2.GetSegmentResponse:
        validate.require_segment_id(request.id)
        async with transaction(self.sessions) as session:
            row = await segments.get_segment(session, request.id)
        return segment_service_pb2.GetSegmentResponse(segment=segment_message(row._mapping))

    async def UpdateSegment(self, request: segment_service_pb2.UpdateSegmentRequest,
                            context: grpc.aio.ServicerContext) -> segment_service_pb2.UpdateSegmentResponse:
        changes = validate.segment_changes(request)
        async with write_transaction(self.sessions, urgent=True) as session:
            row = await segments.update_segment(session, request.id, changes)
        if "filter" in changes:
            self.sizes.poke()
        return segment_service_pb2.UpdateSegmentResponse(segment=segment_message(row._mapping))

    async def DeleteSegment(self, request: segment_service_pb2.DeleteSegmentRequest,
                            context: grpc.aio.ServicerContext) -> segment_service_pb2.DeleteSegmentResponse:
        validate.require_segment_id(request.id)
        async with write_transaction(self.sessions, urgent=True) as session:
            await segments.delete_segment(session, request.id)
        return segment_service_pb2.DeleteSegmentResponse()

    async def QuerySegments(self, request: segment_service_pb2.QuerySegmentsRequest,
                            context: grpc.aio.ServicerContext) -> segment_service_pb2.QuerySegmentsResponse:
        async with transaction(self.sessions) as session:
            rows, pager = await queries.query_segments(session, request)
        return segment_service_pb2.QuerySegmentsResponse(
            segments=[segment_message(row._mapping) for row in rows], next=pager.next, prev=pager.prev)

    async def AddSegmentTargets(self, request: segment_service_pb2.AddSegmentTargetsRequest,
                                context: grpc.aio.ServicerContext) -> segment_service_pb2.AddSegmentTargetsResponse:
        validate.check_targets(request.id, request.target_ids)
        async with write_transaction(self.sessions, urgent=True) as session:
            row = await segments.add_targets(session, request.id, request.target_ids)
        return segment_service_pb2.AddSegmentTargetsResponse(segment=segment_message(row._mapping))

    async def DeleteSegmentTargets(
            self, request: segment_service_pb2.DeleteSegmentTargetsRequest,
            context: grpc.aio.ServicerContext) -> segment_service_pb2.DeleteSegmentTargetsResponse:
        validate.check_targets(request.id, request.target_ids)
        async with write_transaction(self.sessions, urgent=True) as session:
            row = await segments.delete_targets(session, request.id, request.target_ids)
        return segment_service_pb2.DeleteSegmentTargetsResponse(segment=segment_message(row._mapping))

    async def SegmentTargetExists(self, request: segment_service_pb2.SegmentTargetExistsRequest,
                                  context: grpc.aio.ServicerContext) -> segment_service_pb2.SegmentTargetExistsResponse:
        v = Violations()
        check_id(v, request.id, "id")
        check_id(v, request.target_id, "target_id", limit=MAX_CID)
        v.raise_if_any()
        async with transaction(self.sessions) as session:
            exists = await segments.target_exists(session, request.id, request.target_id)
        return segment_service_pb2.SegmentTargetExistsResponse(exists=exists)

    async def QuerySegmentTargets(self, request: segment_service_pb2.QuerySegmentTargetsRequest,
                                  context: grpc.aio.ServicerContext) -> segment_service_pb2.QuerySegmentTargetsResponse:
        validate.require_segment_id(request.id)
        async with transaction(self.sessions) as session:
            targets, pager = await queries.query_targets(session, request)
        return segment_service_pb2.QuerySegmentTargetsResponse(targets=targets, next=pager.next, prev=pager.prev)

    async def CountRecipients(self, request: segment_service_pb2.CountRecipientsRequest,
                              context: grpc.aio.ServicerContext) -> segment_service_pb2.CountRecipientsResponse:
        validate.check_audience(request)
        async with transaction(self.sessions) as session:
            found = await audience.resolve(session, request.segment_ids, request.user_ids, request.sender_id)
            total = await audience.count(session, found)
        return segment_service_pb2.CountRecipientsResponse(count=total)

    async def StreamRecipients(
            self, request: segment_service_pb2.StreamRecipientsRequest,
            context: grpc.aio.ServicerContext) -> AsyncIterator[segment_service_pb2.StreamRecipientsResponse]:
        v = validate.check_audience(request, raise_now=False)
        check_id(v, request.cursor, "cursor", required=False, limit=MAX_CID)
        check_id(v, request.last_target_id, "last_target_id", required=False, limit=MAX_CID)
        size = validate.batch_size(v, request.batch_size)
        v.raise_if_any()
        async with transaction(self.sessions) as session:
            found = await audience.resolve(session, request.segment_ids, request.user_ids, request.sender_id)
        async for batch in audience.stream(self.sessions, found, request.cursor, size, request.last_target_id):
            yield batch

    async def SplitRecipients(self, request: segment_service_pb2.SplitRecipientsRequest,
                              context: grpc.aio.ServicerContext) -> segment_service_pb2.SplitRecipientsResponse:
        v = validate.check_audience(request, raise_now=False)
        v.check(1 <= request.parts <= MAX_AUDIENCE_PARTS, "parts", f"must be between 1 and {MAX_AUDIENCE_PARTS}")
        v.raise_if_any()
        async with transaction(self.sessions) as session:
            found = await audience.resolve(session, request.segment_ids, request.user_ids, request.sender_id)
            boundaries = await audience.split(session, found, request.parts)
        return segment_service_pb2.SplitRecipientsResponse(boundaries=boundaries)
