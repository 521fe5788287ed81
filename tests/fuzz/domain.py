"""What Herald's fields mean to the fuzzer: a small world of real objects seeded through the
services (users, channels, segments, campaigns, a finished delivery, a device, real cursors),
the realistic values drawn from it field by field, valid filters built from the services' own
filter specs, and the hostile values only Herald's fields have (hostile filters and templates).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

import grpc
from google.protobuf import timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.delivery.v1 import (delivery_service_pb2, delivery_service_pb2_grpc, message_service_pb2,
                                message_service_pb2_grpc)
from herald.segment.v1 import (directory_pb2, directory_service_pb2, directory_service_pb2_grpc, segment_pb2,
                               segment_service_pb2, segment_service_pb2_grpc)
from services.campaign_svc.query import FILTER as CAMPAIGNS
from services.delivery_svc.dead_letters import DEAD_LETTER_FILTER
from services.delivery_svc.deliveries import RECIPIENT_FILTER
from services.delivery_svc.messages import MESSAGE_FILTER
from services.kit.filters import FilterSpec, Kind
from services.segment_svc.filters import CHANNELS, SEGMENTS, TARGETS, USERS

from .strategies import WELL_KNOWN, to_struct

USERS_IDS = [f"u-{i:02d}" for i in range(12)]
SENDER = "sender"
# Objects the fuzzer may delete: deleting them leaves the rest of the world as it was.
DOOMED_USERS = [f"doomed-{i}" for i in range(4)]
DOOMED_SEGMENTS = [f"doomed-segment-{i}" for i in range(4)]
DOOMED_CAMPAIGNS = [f"doomed-campaign-{i}" for i in range(4)]
DRAFTS = [f"draft-{i}" for i in range(4)]
FINISHED = "finished"
CHANNEL_TYPE = "messaging"
TEMPLATES = ["Hi {{ receiver.name }}!", "{{ sender.name }} has news", "plain text",
             "{% if receiver.custom.vip %}VIP {% endif %}{{ receiver.name | upper }}",
             "{% for team in receiver.teams %}{{ team }} {% endfor %}", "{{ receiver.custom.nickname }}"]
CHANNEL_ID_TEMPLATES = ["{{ receiver.id }}-{{ sender.id }}", "", "news-{{ receiver.id }}"]

# Templates that must be refused at create or fail only their recipients (DESIGN §10.3).
HOSTILE_TEMPLATES = [
    # constants that blow up if folded or rendered
    "{{ 'x' * 10**9 }}", "{{ [0] * 10**9 }}", "{{ 'ab' * 999999999 }}", "{{ 10**10**8 }}",
    "{{ (range(100000)|list) * 100000 }}", "{{ range(10**9)|list }}",
    # loops nested under the range cap
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}.{% endfor %}{% endfor %}"
    "{% endfor %}",
    "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}",
    # mutation of objects other recipients see
    "{{ receiver.teams.append(receiver.teams) }}", "{{ receiver.teams.extend(receiver.teams) }}",
    "{{ receiver.custom.update({'x': receiver.custom}) }}", "{{ sender.custom.clear() }}",
    "{{ receiver.custom.setdefault('n', []).append(1) }}",
    # repetition of receiver data
    "{{ receiver.name * 1000000 }}", "{{ (receiver.name ~ receiver.id) * 10**7 }}",
    "{{ receiver.custom | string * 100000 }}", "{{ receiver.teams * 1000000 }}",
    # escapes from the sandbox, and what is not a variable
    "{{ receiver.__class__.__mro__ }}", "{{ ''.__class__.__subclasses__() }}", "{{ '{0.__class__}'.format(sender) }}",
    "{{ lipsum(1000, false, 100000, 100000) }}", "{{ cycler }}", "{% include 'x' %}", "{% extends 'x' %}",
    "{% import 'x' as y %}", "{{ nope }}", "{{ receiver.name", "{% for %}", "{% raw %}", "{# #} {{ 1/0 }}",
    "{{ '%s' % receiver }}", "{{ receiver | attr('__dict__') }}", "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
]


def _deep(levels: int) -> dict[str, Any]:
    """`levels` nested $and (five messages a level: protobuf takes at most 100)."""
    clause: dict[str, Any] = {"name": "x"}
    for _ in range(levels):
        clause = {"$and": [clause]}
    return clause


# Filters of the wrong shapes, and of values a database cannot compare.
MALFORMED_FILTERS = [
    {"a": {"$bogus": 1}}, {"$and": 3}, {"id": {"$in": "x"}}, {"created_at": {"$gt": "nope"}},
    {"x": {"$gt": {"a": 1}}}, {"status": ["a"]}, {"members": {"$in": [1, 2]}}, {"teams": {"$contains": 5}},
    {"$or": [{"$or": []}]}, {"target_id": {"$exists": "yes"}}, {"created_at": {"$gt": "99999-01-01T00:00:00Z"}},
    {"created_at": {"$lt": "0000-00-00T00:00:00Z"}}, {"a..b": 1}, {"": 1}, {"$where": "1"},
    {"score": {"$gt": 1e308}}, {"score": 2.0**70}, {"score": {"$in": [math.nan]}}, {"score": -math.inf},
]
# Filters past the budgets of DESIGN §10.3 (depth 10, 100 clauses a level, 10,000 values in
# $in / $nin, 4 MiB), built when drawn: a strategy holding them would print megabytes.
OVERSIZED_FILTERS = [
    partial(_deep, 11), partial(_deep, 15),
    lambda: {"$or": [{"name": str(i)} for i in range(101)]},
    lambda: {"id": {"$in": [str(i) for i in range(10_001)]}},
    lambda: {"score": {"$nin": list(range(10_001))}},
    lambda: {"name": {"$in": ["x" * 1000] * 4_300}},
]
hostile_filters = st.one_of(st.sampled_from(MALFORMED_FILTERS),
                            st.sampled_from(OVERSIZED_FILTERS).map(lambda build: build())).map(to_struct)


# Pairs of fields a plausible request sets one of at most.
EXCLUSIVE = [("segment_ids", "user_ids"), ("next", "prev"), ("receiver_id", "cid"), ("members", "members_template"),
             ("filter", "all_users"), ("all_users", "all_sender_channels"), ("filter", "all_sender_channels"),
             ("ids", "all"), ("filter", "all")]


@dataclass
class World:
    """The objects seeded into the services, and cursors to real pages of them."""

    segments: dict[str, str] = field(default_factory=dict)  # name → id
    cids: list[str] = field(default_factory=list)
    device_ids: list[str] = field(default_factory=list)
    cursors: dict[str, list[str]] = field(default_factory=dict)  # request message name → next/prev cursors

    @cached_property
    def _realistic(self) -> tuple[dict, dict]:
        return _by_message(self), _by_field(self)

    def realism(self, message: Descriptor, field: FieldDescriptor) -> st.SearchStrategy[Any] | None:
        by_message, by_field = self._realistic
        found = by_message.get((message.name, field.name))
        if found is None and (field.message_type is None or field.message_type.full_name in WELL_KNOWN):
            found = by_field.get(field.name)  # names alone say what scalars, Structs and Timestamps hold
        if found is None:
            return None
        value, many = found
        if field.is_repeated and not many:
            return st.lists(value, min_size=1, max_size=3)
        return value

    def hostility(self, message: Descriptor, field: FieldDescriptor) -> st.SearchStrategy[Any] | None:
        if field.name == "filter":
            return hostile_filters
        if field.name == "text" or (message.name == "ChannelTemplate" and field.name in ("id", "team")):
            return st.sampled_from(HOSTILE_TEMPLATES)
        if field.name in ("custom", "attachments"):
            template_values = st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(HOSTILE_TEMPLATES),
                                              min_size=1, max_size=2).map(to_struct)
            return st.lists(template_values, min_size=1, max_size=2) if field.is_repeated else template_values
        return None


def _ids(values: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(values)


def _by_field(world: World) -> dict[str, tuple[st.SearchStrategy[Any], bool]]:
    """Realistic values by field name: (strategy, whether it draws a whole list)."""
    users = _ids([SENDER, *USERS_IDS])
    campaigns = _ids([*DRAFTS, FINISHED])
    cids = _ids(world.cids)
    return {
        "user_id": (users, False), "sender_id": (users, False), "receiver_id": (users, False),
        "recipient_id": (users, False), "created_by_id": (users, False), "target_id": (users, False),
        "user_ids": (users, False), "target_ids": (users, False), "members": (users, False),
        "ids": (users, False), "campaign_id": (campaigns, False), "campaign_ids": (campaigns, False),
        "segment_ids": (_ids([world.segments["filter"], world.segments["manual"]]), False),
        "cid": (cids, False), "cids": (cids, False),
        "request_id": (st.sampled_from(["", "retry-1"]), False), "name": (st.sampled_from(["Ann", "news", "ü-name"]), False),
        "description": (st.sampled_from(["", "about"]), False), "role": (st.sampled_from(["user", "admin"]), False),
        "team": (st.sampled_from(["", "red"]), False), "teams": (st.sampled_from(["red", "blue"]), False),
        "channel_role": (st.sampled_from(["channel_member", "channel_moderator"]), False),
        "custom": (_customs, False), "attachments": (_customs, False), "text": (st.sampled_from(TEMPLATES), False),
        "poll_id": (st.just(""), False), "limit": (st.integers(0, 100), False), "user_limit": (st.integers(0, 10), False),
        "batch_size": (st.integers(0, 50), False), "after_sequence": (st.integers(0, 5), False),
        "types": (st.sampled_from(["message.new", "channel.created"]), False),
        "create_channels": (st.booleans(), False),
        "all": (st.booleans(), False), "created_at": (_recent, False), "updated_at": (_recent, False),
        "sender_mode": (st.sampled_from([0, 1, 2]), False), "sender_visibility": (st.sampled_from([0, 1, 2]), False),
        "month": (st.sampled_from(["", "2026-07", "1999-12", "0001-01", "9999-12"]), False),
    }


def _by_message(world: World) -> dict[tuple[str, str], tuple[st.SearchStrategy[Any], bool]]:
    """Realistic values where a field's name alone does not say what it holds."""
    segments = _ids(list(world.segments.values()))
    pages = {name: (st.sampled_from(["", *cursors]), False) for name, cursors in world.cursors.items()}
    by_message = {
        **{(name, "next"): page for name, page in pages.items()},
        **{(name, "prev"): page for name, page in pages.items()},
        ("StreamRecipientsRequest", "cursor"): pages.get("StreamRecipientsRequest", (st.just(""), False)),
        ("User", "id"): (_ids([SENDER, *USERS_IDS, "new-user"]), False),
        ("Channel", "type"): (st.just(CHANNEL_TYPE), False),
        ("ChannelSpec", "type"): (st.just(CHANNEL_TYPE), False),
        ("ChannelTemplate", "type"): (st.just(CHANNEL_TYPE), False),
        ("Channel", "cid"): (st.just(""), False),
        ("Channel", "id"): (_ids([*(cid.split(":")[1] for cid in world.cids), "new"]), False),
        ("Device", "id"): (_ids([*world.device_ids, "new-device"]), False),
        ("Device", "provider"): (st.just(directory_pb2.DEVICE_PROVIDER_HTTP), False),
        ("Device", "endpoint"): (st.just("https://93.184.215.14/push/1"), False),
        ("Device", "keys"): (st.none(), False),
        ("DeleteDevicesRequest", "ids"): (_ids([*world.device_ids, "gone"]), False),
        ("DeleteUsersRequest", "ids"): (_ids(DOOMED_USERS), False),
        ("DeleteSegmentRequest", "id"): (_ids(DOOMED_SEGMENTS), False),
        ("DeleteCampaignRequest", "id"): (_ids(DOOMED_CAMPAIGNS), False),
        ("CreateSegmentRequest", "id"): (st.sampled_from(["", "seg-new", world.segments["manual"]]), False),
        ("CreateSegmentRequest", "type"): (st.sampled_from([1, 2]), False),
        ("CreateSegmentRequest", "filter"): (filters(USERS, empty=False), False),
        ("UpdateSegmentRequest", "filter"): (filters(USERS, empty=False), False),
        ("CreateCampaignRequest", "id"): (st.sampled_from(["", "campaign-new", DRAFTS[0]]), False),
        ("Campaign", "id"): (st.sampled_from(["snapshot-1", "snapshot-2", FINISHED]), False),
        ("Event", "id"): (st.sampled_from(["event-1", "event-2"]), False),
        ("Event", "type"): (st.sampled_from(["campaign.started", "campaign.completed", "campaign.stopped"]), False),
        ("ChannelTemplate", "id"): (st.sampled_from(CHANNEL_ID_TEMPLATES), False),
        ("ChannelTemplate", "members"): (st.just([]), True),
        ("StartCampaignRequest", "scheduled_for"): (st.none(), False),
        ("StopDeliveryRequest", "reason"): (st.sampled_from([1, 2, 3, 4]), False),
    }
    by_message.update({(request, "id"): (segments, False) for request in SEGMENT_ID_REQUESTS})
    by_message.update({(request, "id"): (_ids([*DRAFTS, FINISHED]), False) for request in CAMPAIGN_ID_REQUESTS})
    for request, spec in _FILTER_SPECS.items():
        by_message[(request, "filter")] = (filters(spec), False)
        by_message[(request, "sort")] = (_sorts(spec), True)
    return by_message


# Requests whose `id` names a segment, or a campaign.
SEGMENT_ID_REQUESTS = ["GetSegmentRequest", "UpdateSegmentRequest", "AddSegmentTargetsRequest",
                       "DeleteSegmentTargetsRequest", "SegmentTargetExistsRequest", "QuerySegmentTargetsRequest"]
CAMPAIGN_ID_REQUESTS = ["GetCampaignRequest", "UpdateCampaignRequest", "StartCampaignRequest", "StopCampaignRequest",
                        "WatchCampaignRequest", "PreviewCampaignRequest", "SendTestCampaignRequest"]

# The spec each request's filter is read by, in the service that serves it.
_FILTER_SPECS: dict[str, FilterSpec] = {
    "QueryUsersRequest": USERS, "QueryChannelsRequest": CHANNELS, "QuerySegmentsRequest": SEGMENTS,
    "QuerySegmentTargetsRequest": TARGETS, "QueryCampaignsRequest": CAMPAIGNS,
    "QueryRecipientsRequest": RECIPIENT_FILTER, "QueryMessagesRequest": MESSAGE_FILTER,
    "QueryDeadLettersRequest": DEAD_LETTER_FILTER, "ReplayDeadLettersRequest": DEAD_LETTER_FILTER,
}

def _sorts(spec: FilterSpec) -> st.SearchStrategy[list[common_pb2.SortParam]]:
    """No sort, or one on a field the spec has a column for (what each query may sort on)."""
    sortable = sorted(name for name, field in spec.fields.items() if field.column is not None)
    sort = st.builds(common_pb2.SortParam, field=st.sampled_from(sortable), direction=st.sampled_from([1, -1]))
    return st.lists(sort, max_size=1)


_customs = st.dictionaries(st.sampled_from(["country", "score", "vip", "nickname"]),
                           st.one_of(st.sampled_from(["NL", "US"]), st.integers(0, 100), st.booleans()),
                           max_size=3).map(to_struct)
_recent = st.builds(timestamp_pb2.Timestamp, seconds=st.integers(1_700_000_000, 1_900_000_000))


_VALUES = {
    Kind.STRING: st.sampled_from([SENDER, *USERS_IDS[:3], "x", FINISHED]),
    Kind.NUMBER: st.one_of(st.integers(-10, 100), st.floats(-1e6, 1e6)),
    Kind.BOOL: st.booleans(),
    Kind.DATETIME: st.sampled_from(["2020-01-01T00:00:00Z", "2030-06-01T12:00:00+02:00", "2026-01-01T00:00:00"]),
    Kind.ARRAY_OF_STRINGS: st.sampled_from(["red", "blue", SENDER]),
}


def filters(spec: FilterSpec, *, empty: bool = True) -> st.SearchStrategy[Any]:
    """Valid filters over `spec`'s fields (and custom keys where it has them), `{}` if `empty`."""
    clause = st.sampled_from(sorted(spec.fields) + (["country", "score"] if spec.custom_column is not None else [])
                             ).flatmap(lambda name: _clause(spec, name))
    combined = st.one_of(clause, st.lists(clause, min_size=1, max_size=3).map(lambda cs: {"$and": cs}),
                         st.lists(clause, min_size=1, max_size=3).map(lambda cs: {"$or": cs}))
    return (st.one_of(st.just({}), combined) if empty else combined).map(to_struct)


def _clause(spec: FilterSpec, name: str) -> st.SearchStrategy[dict[str, Any]]:
    known = spec.fields.get(name)
    if known is None:  # a custom key: any JSON value compares
        kind, operators = Kind.STRING, ["$eq", "$ne", "$in", "$exists", "$gt"]
        values = st.one_of(_VALUES[Kind.STRING], _VALUES[Kind.NUMBER], _VALUES[Kind.BOOL])
    else:
        kind, operators = known.kind, sorted(known.operators or [])
        values = (st.sampled_from(sorted(k for k in known.values or {} if isinstance(k, str)))
                  if kind is Kind.ENUM else _VALUES[kind])
    return st.tuples(st.sampled_from(["implicit", *operators]), st.lists(values, min_size=1, max_size=3)).map(
        lambda pair: {name: _condition(pair[0], pair[1])})


def _condition(operator: str, values: list[Any]) -> Any:
    if operator == "implicit":
        return values[0]
    if operator in ("$in", "$nin"):
        return {operator: values}
    if operator == "$exists":
        return {operator: bool(len(values) % 2)}
    return {operator: values[0]}


async def seed(channels: dict[str, grpc.aio.Channel]) -> World:
    """Creates the world through the services' own RPCs, and reads back real cursors."""
    world = World()
    directory = directory_service_pb2_grpc.DirectoryServiceStub(channels["segment"])
    segments = segment_service_pb2_grpc.SegmentServiceStub(channels["segment"])
    campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channels["campaign"])
    deliveries = delivery_service_pb2_grpc.DeliveryServiceStub(channels["delivery"])
    messages = message_service_pb2_grpc.MessageServiceStub(channels["delivery"])
    await directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=[
        directory_pb2.User(id=user_id, name=f"Name {user_id}", teams=["red"], custom=to_struct(
            {"country": "NL", "score": i, "vip": i % 2 == 0})) for i, user_id in
        enumerate([SENDER, *USERS_IDS, *DOOMED_USERS])]))
    world.cids = [f"{CHANNEL_TYPE}:c-{i}" for i in range(3)]
    await directory.UpsertChannels(directory_service_pb2.UpsertChannelsRequest(channels=[
        directory_pb2.Channel(type=CHANNEL_TYPE, id=cid.split(":")[1], created_by_id=SENDER, members=[
            directory_pb2.ChannelMember(user_id=SENDER), directory_pb2.ChannelMember(user_id=USERS_IDS[i])])
        for i, cid in enumerate(world.cids)]))
    device = await directory.UpsertDevices(directory_service_pb2.UpsertDevicesRequest(devices=[
        directory_pb2.Device(id="device-1", user_id=USERS_IDS[0], provider=directory_pb2.DEVICE_PROVIDER_HTTP,
                             endpoint="https://93.184.215.14/push/1")]))
    world.device_ids = [d.id for d in device.devices]
    user, channel = segment_pb2.SEGMENT_TYPE_USER, segment_pb2.SEGMENT_TYPE_CHANNEL
    for name, request in [
        ("filter", segment_service_pb2.CreateSegmentRequest(type=user, name="nl", filter=to_struct({"country": "NL"}))),
        ("everyone", segment_service_pb2.CreateSegmentRequest(type=user, name="all", all_users=True)),
        ("manual", segment_service_pb2.CreateSegmentRequest(type=user, name="manual")),
        ("channels", segment_service_pb2.CreateSegmentRequest(type=channel, name="channels")),
        *[(doomed, segment_service_pb2.CreateSegmentRequest(id=doomed, type=user, name="doomed"))
          for doomed in DOOMED_SEGMENTS],
    ]:
        world.segments[name] = (await segments.CreateSegment(request)).segment.id
    await segments.AddSegmentTargets(segment_service_pb2.AddSegmentTargetsRequest(
        id=world.segments["manual"], target_ids=USERS_IDS))
    await segments.AddSegmentTargets(segment_service_pb2.AddSegmentTargetsRequest(
        id=world.segments["channels"], target_ids=world.cids))
    template = common_pb2.MessageTemplate(text=TEMPLATES[0])
    for campaign_id in [*DRAFTS, *DOOMED_CAMPAIGNS, FINISHED]:
        await campaigns.CreateCampaign(campaign_service_pb2.CreateCampaignRequest(
            id=campaign_id, name=campaign_id, sender_id=SENDER, user_ids=USERS_IDS, message_template=template,
            create_channels=True, channel_template=common_pb2.ChannelTemplate(
                type=CHANNEL_TYPE, id=CHANNEL_ID_TEMPLATES[0])))
    await campaigns.StartCampaign(campaign_service_pb2.StartCampaignRequest(id=FINISHED))
    async for update in campaigns.WatchCampaign(campaign_service_pb2.WatchCampaignRequest(id=FINISHED)):
        last = update.campaign
    assert last.status == campaign_pb2.CAMPAIGN_STATUS_COMPLETED, last
    await _read_cursors(world, directory, segments, campaigns, deliveries, messages)
    return world


async def _read_cursors(world: World, directory: Any, segments: Any, campaigns: Any, deliveries: Any,
                        messages: Any) -> None:
    """The cursors of second pages (limit 1), and of a recipient stream's first batch."""
    pages = [
        (directory.QueryUsers, directory_service_pb2.QueryUsersRequest),
        (directory.QueryChannels, directory_service_pb2.QueryChannelsRequest),
        (segments.QuerySegments, segment_service_pb2.QuerySegmentsRequest),
        (campaigns.QueryCampaigns, campaign_service_pb2.QueryCampaignsRequest),
        (deliveries.QueryRecipients, delivery_service_pb2.QueryRecipientsRequest),
        (messages.QueryMessages, message_service_pb2.QueryMessagesRequest),
    ]
    answers = await asyncio.gather(*(rpc(request(limit=1)) for rpc, request in pages))
    for (_, request), answer in zip(pages, answers):
        world.cursors[request.DESCRIPTOR.name] = [answer.next]
    targets = await segments.QuerySegmentTargets(segment_service_pb2.QuerySegmentTargetsRequest(
        id=world.segments["manual"], limit=1))
    world.cursors["QuerySegmentTargetsRequest"] = [targets.next]
    users = await campaigns.GetCampaign(campaign_service_pb2.GetCampaignRequest(id=DRAFTS[0], limit=1))
    world.cursors["GetCampaignRequest"] = [users.users.next]
    stream = segments.StreamRecipients(segment_service_pb2.StreamRecipientsRequest(
        segment_ids=[world.segments["manual"]], batch_size=1))
    first = await stream.read()
    stream.cancel()
    world.cursors["StreamRecipientsRequest"] = [first.cursor]
