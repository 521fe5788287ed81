"""gRPC handlers of the segment service: parse and validate, call the logic, convert the result."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.common.v1 import common_pb2
from herald.segment.v1 import (directory_service_pb2, directory_service_pb2_grpc, segment_service_pb2,
                               segment_service_pb2_grpc)
from services.kit.db import transaction
from services.kit.errors import InvalidArgument, Violations
from services.segment_svc import audience, directory, ensure, queries, segments
from services.segment_svc.convert import SEGMENT_TYPE_WORDS, ensured_message, segment_message, struct_to_dict
from services.segment_svc.filters import audience_condition
from services.segment_svc.sizes import SizeWorker
from services.segment_svc.validate import (MAX_CHANNELS_PER_CALL, MAX_CID, MAX_ENSURE_SPECS, MAX_MEMBERS_PER_SPEC,
                                           MAX_SEGMENT_DESCRIPTION, MAX_SEGMENT_NAME, MAX_SEGMENTS_PER_AUDIENCE,
                                           MAX_TARGETS_PER_CALL, MAX_TEAM, MAX_USERS_PER_CALL, batch_size,
                                           check_cid, check_channel_type, check_id, check_id_list, check_text)

Sessions = async_sessionmaker[AsyncSession]
# Stop listing violations after this many: a 10,000-item request should not echo 10,000 errors.
MAX_VIOLATIONS = 20


class DirectoryServiceServicer(directory_service_pb2_grpc.DirectoryServiceServicer):
    """Handlers of herald.segment.v1.DirectoryService."""

    def __init__(self, sessions: Sessions, sizes: SizeWorker) -> None:
        self.sessions = sessions
        self.sizes = sizes

    async def UpsertUsers(self, request, context):
        v = Violations()
        _check_users(v, request.users, required=True)
        v.raise_if_any()
        async with transaction(self.sessions) as session:
            users = await directory.upsert_users(session, request.users)
        self.sizes.poke()
        return directory_service_pb2.UpsertUsersResponse(users=users)

    async def GetUsers(self, request, context):
        v = Violations()
        check_id_list(v, request.ids, "ids", limit=MAX_USERS_PER_CALL)
        v.raise_if_any()
        async with transaction(self.sessions) as session:
            found = await directory.get_users(session, request.ids)
        missing = [i for i in dict.fromkeys(request.ids) if i not in found]
        return directory_service_pb2.GetUsersResponse(users=list(found.values()), missing_ids=missing)

    async def QueryUsers(self, request, context):
        async with transaction(self.sessions) as session:
            users, pager = await queries.query_users(session, request)
        return directory_service_pb2.QueryUsersResponse(users=users, next=pager.next, prev=pager.prev)

    async def DeleteUsers(self, request, context):
        v = Violations()
        check_id_list(v, request.ids, "ids", limit=MAX_USERS_PER_CALL)
        v.raise_if_any()
        async with transaction(self.sessions) as session:
            deleted = await directory.delete_users(session, request.ids)
        self.sizes.poke()
        return directory_service_pb2.DeleteUsersResponse(deleted_count=deleted)

    async def ImportUsers(self, request_iterator, context):
        """Each chunk is stored in its own transaction: memory, WAL growth and write-lock time
        stay bounded however long the stream. A bad chunk ends the call with INVALID_ARGUMENT;
        the chunks before it are kept (the error says how many users that was)."""
        imported = 0
        chunk_no = 0
        async for chunk in request_iterator:
            v = Violations()
            _check_users(v, chunk.users, required=False)
            if v:
                raise InvalidArgument(violations=[
                    type(item)(item.field, f"{item.description} (chunk {chunk_no}; {imported} users "
                                           f"imported before it)") for item in v.items])
            if chunk.users:
                async with transaction(self.sessions) as session:
                    imported += len(await directory.store_users(session, chunk.users))
                self.sizes.poke()
            chunk_no += 1
        return directory_service_pb2.ImportUsersResponse(imported_count=imported)

    async def UpsertChannels(self, request, context):
        v = Violations()
        _check_channels(v, request.channels)
        v.raise_if_any()
        async with transaction(self.sessions) as session:
            channels = await directory.upsert_channels(session, request.channels)
        self.sizes.poke()
        return directory_service_pb2.UpsertChannelsResponse(channels=channels)

    async def QueryChannels(self, request, context):
        async with transaction(self.sessions) as session:
            channels, pager = await queries.query_channels(session, request)
        return directory_service_pb2.QueryChannelsResponse(channels=channels, next=pager.next, prev=pager.prev)

    async def EnsureChannels(self, request, context):
        _check_ensure(request)
        async with transaction(self.sessions) as session:
            outcomes = await ensure.ensure_channels(session, request)
        if any(o.created for o in outcomes):
            self.sizes.poke()
        return directory_service_pb2.EnsureChannelsResponse(channels=[
            ensured_message(o.recipient_id, o.cid, o.created, o.skip_reason, o.channel and o.channel.row,
                            o.channel and o.channel.members) for o in outcomes])


class SegmentServiceServicer(segment_service_pb2_grpc.SegmentServiceServicer):
    """Handlers of herald.segment.v1.SegmentService."""

    def __init__(self, sessions: Sessions, sizes: SizeWorker) -> None:
        self.sessions = sessions
        self.sizes = sizes

    async def CreateSegment(self, request, context):
        fields = _segment_fields(request)
        async with transaction(self.sessions) as session:
            row = await segments.create_segment(session, **fields)
        if segments.is_computed(row):
            self.sizes.poke()
        return segment_service_pb2.CreateSegmentResponse(segment=segment_message(row._mapping))

    async def GetSegment(self, request, context):
        _require_segment_id(request.id)
        async with transaction(self.sessions) as session:
            row = await segments.get_segment(session, request.id)
        return segment_service_pb2.GetSegmentResponse(segment=segment_message(row._mapping))

    async def UpdateSegment(self, request, context):
        changes = _segment_changes(request)
        async with transaction(self.sessions) as session:
            row = await segments.update_segment(session, request.id, changes)
        if "filter" in changes:
            self.sizes.poke()
        return segment_service_pb2.UpdateSegmentResponse(segment=segment_message(row._mapping))

    async def DeleteSegment(self, request, context):
        _require_segment_id(request.id)
        async with transaction(self.sessions) as session:
            await segments.delete_segment(session, request.id)
        return segment_service_pb2.DeleteSegmentResponse()

    async def QuerySegments(self, request, context):
        async with transaction(self.sessions) as session:
            rows, pager = await queries.query_segments(session, request)
        return segment_service_pb2.QuerySegmentsResponse(
            segments=[segment_message(row._mapping) for row in rows], next=pager.next, prev=pager.prev)

    async def AddSegmentTargets(self, request, context):
        _check_targets(request.id, request.target_ids)
        async with transaction(self.sessions) as session:
            row = await segments.add_targets(session, request.id, request.target_ids)
        return segment_service_pb2.AddSegmentTargetsResponse(segment=segment_message(row._mapping))

    async def DeleteSegmentTargets(self, request, context):
        _check_targets(request.id, request.target_ids)
        async with transaction(self.sessions) as session:
            row = await segments.delete_targets(session, request.id, request.target_ids)
        return segment_service_pb2.DeleteSegmentTargetsResponse(segment=segment_message(row._mapping))

    async def SegmentTargetExists(self, request, context):
        v = Violations()
        check_id(v, request.id, "id")
        check_id(v, request.target_id, "target_id", limit=MAX_CID)
        v.raise_if_any()
        async with transaction(self.sessions) as session:
            exists = await segments.target_exists(session, request.id, request.target_id)
        return segment_service_pb2.SegmentTargetExistsResponse(exists=exists)

    async def QuerySegmentTargets(self, request, context):
        _require_segment_id(request.id)
        async with transaction(self.sessions) as session:
            targets, pager = await queries.query_targets(session, request)
        return segment_service_pb2.QuerySegmentTargetsResponse(targets=targets, next=pager.next, prev=pager.prev)

    async def CountRecipients(self, request, context):
        _check_audience(request)
        async with transaction(self.sessions) as session:
            found = await audience.resolve(session, request.segment_ids, request.user_ids, request.sender_id)
            total = await audience.count(session, found)
        return segment_service_pb2.CountRecipientsResponse(count=total)

    async def StreamRecipients(self, request, context) -> AsyncIterator[segment_service_pb2.StreamRecipientsResponse]:
        v = _check_audience(request, raise_now=False)
        check_id(v, request.cursor, "cursor", required=False, limit=MAX_CID)
        size = batch_size(v, request.batch_size)
        v.raise_if_any()
        async with transaction(self.sessions) as session:
            found = await audience.resolve(session, request.segment_ids, request.user_ids, request.sender_id)
        async for batch in audience.stream(self.sessions, found, request.cursor, size):
            yield batch


# ---------------------------------------------------------------------------------------------
# Validation


def _check_users(v: Violations, users, *, required: bool) -> None:
    if not users:
        if required:
            v.add("users", "must list at least one user")
        return
    if len(users) > MAX_USERS_PER_CALL:
        v.add("users", f"must list at most {MAX_USERS_PER_CALL} users (got {len(users)})")
        return
    for i, user in enumerate(users):
        if len(v.items) >= MAX_VIOLATIONS:
            return
        check_id(v, user.id, f"users[{i}].id")


def _check_channels(v: Violations, channels) -> None:
    if not channels:
        v.add("channels", "must list at least one channel")
        return
    if len(channels) > MAX_CHANNELS_PER_CALL:
        v.add("channels", f"must list at most {MAX_CHANNELS_PER_CALL} channels (got {len(channels)})")
        return
    for i, channel in enumerate(channels):
        if len(v.items) >= MAX_VIOLATIONS:
            return
        path = f"channels[{i}]"
        check_channel_type(v, channel.type, f"{path}.type")
        check_id(v, channel.id, f"{path}.id")
        if channel.cid:
            v.check(channel.cid == f"{channel.type}:{channel.id}", f"{path}.cid", "must be 'type:id' (or empty)")
        check_id(v, channel.created_by_id, f"{path}.created_by_id", required=False)
        check_text(v, channel.team, f"{path}.team", MAX_TEAM)
        for j, member in enumerate(channel.members):
            check_id(v, member.user_id, f"{path}.members[{j}].user_id")


def _check_ensure(request: directory_service_pb2.EnsureChannelsRequest) -> None:
    v = Violations()
    check_id(v, request.campaign_id, "campaign_id")
    check_id(v, request.sender_id, "sender_id")
    v.check(request.sender_mode in common_pb2.SenderMode.values(), "sender_mode", "is not a known sender mode")
    v.check(request.sender_visibility in common_pb2.SenderVisibility.values(), "sender_visibility",
            "is not a known sender visibility")
    if not request.channels:
        v.add("channels", "must list at least one channel spec")
    elif len(request.channels) > MAX_ENSURE_SPECS:
        v.add("channels", f"must list at most {MAX_ENSURE_SPECS} channel specs (got {len(request.channels)})")
    else:
        seen: dict[str, int] = {}
        for i, spec in enumerate(request.channels):
            if len(v.items) >= MAX_VIOLATIONS:
                break
            _check_spec(v, spec, f"channels[{i}]")
            if spec.recipient_id in seen:
                v.add(f"channels[{i}].recipient_id", f"repeats channels[{seen[spec.recipient_id]}]")
            seen.setdefault(spec.recipient_id, i)
    v.raise_if_any()


def _check_spec(v: Violations, spec, path: str) -> None:
    check_id(v, spec.recipient_id, f"{path}.recipient_id", limit=MAX_CID)
    if spec.receiver_id and spec.cid:
        v.add(f"{path}.cid", "give receiver_id (user target) or cid (channel target), not both")
        return
    if spec.cid:
        check_cid(v, spec.cid, f"{path}.cid")
        return
    if not check_id(v, spec.receiver_id, f"{path}.receiver_id"):
        return
    check_channel_type(v, spec.type, f"{path}.type")
    check_id(v, spec.id, f"{path}.id", required=False)
    check_text(v, spec.team, f"{path}.team", MAX_TEAM)
    if len(spec.members) > MAX_MEMBERS_PER_SPEC:
        v.add(f"{path}.members", f"must list at most {MAX_MEMBERS_PER_SPEC} members")
        return
    for j, member in enumerate(spec.members):
        check_id(v, member.user_id, f"{path}.members[{j}].user_id")


def _require_segment_id(segment_id: str) -> None:
    v = Violations()
    check_id(v, segment_id, "id")
    v.raise_if_any()


def _check_targets(segment_id: str, target_ids) -> None:
    v = Violations()
    check_id(v, segment_id, "id")
    check_id_list(v, target_ids, "target_ids", limit=MAX_TARGETS_PER_CALL, item_limit=MAX_CID)
    v.raise_if_any()


def _check_audience(request, *, raise_now: bool = True) -> Violations:
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


def _filter_of(request) -> dict | None:
    """The request's filter as a dict, None when absent; an empty filter is rejected."""
    if not request.HasField("filter"):
        return None
    value = struct_to_dict(request.filter)
    if not value:
        raise InvalidArgument("filter", "must not be empty (use all_users for every user; omit it for a "
                                        "manual segment)")
    return value


def _segment_fields(request: segment_service_pb2.CreateSegmentRequest) -> dict:
    v = Violations()
    check_id(v, request.id, "id", required=False)
    kind = SEGMENT_TYPE_WORDS.get(request.type)
    v.check(kind is not None, "type", "is required: SEGMENT_TYPE_USER or SEGMENT_TYPE_CHANNEL")
    check_text(v, request.name, "name", MAX_SEGMENT_NAME)
    check_text(v, request.description, "description", MAX_SEGMENT_DESCRIPTION)
    filter_dict = _filter_of(request)
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
    if filter_dict is not None:
        audience_condition(kind, filter_dict)  # a malformed filter fails now, not when sending
    return {"id": request.id, "type": kind, "name": request.name, "description": request.description,
            "filter": filter_dict, "all_users": request.all_users, "all_sender_channels": request.all_sender_channels}


def _segment_changes(request: segment_service_pb2.UpdateSegmentRequest) -> dict:
    v = Violations()
    check_id(v, request.id, "id")
    changes: dict = {}
    if request.HasField("name"):
        check_text(v, request.name, "name", MAX_SEGMENT_NAME)
        changes["name"] = request.name
    if request.HasField("description"):
        check_text(v, request.description, "description", MAX_SEGMENT_DESCRIPTION)
        changes["description"] = request.description
    v.raise_if_any()
    filter_dict = _filter_of(request)
    if filter_dict is not None:
        changes["filter"] = filter_dict
    return changes
