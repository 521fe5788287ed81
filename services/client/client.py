"""`HeraldClient`: Herald's API for asyncio Python, named as the reference SDK names its calls.

    async with HeraldClient.from_env() as herald:
        await herald.upsert_users([{"id": "ann", "name": "Ann"}])
        campaign = await herald.create_campaign(id="hi", sender_id="boss", user_ids=["ann"],
                                                message_template={"text": "Hi {{ receiver.name }}"})
        await herald.start_campaign("hi")
        async for campaign in herald.watch_campaign("hi"):
            print(campaign.stats.progress)

Plain values in (dicts, lists, datetimes: `services.client.messages`), generated messages out.
Every unary call has a deadline (`timeout`, per client and per call) that covers its retries
too. Idempotent calls are retried on UNAVAILABLE (a service restarting) for up to
`retry_unavailable_s`, with jittered backoff; any call refused with RESOURCE_EXHAUSTED and a
`RetryInfo` delay no longer than `max_retry_wait_s` is retried after that delay (the services
refuse those before doing anything). Streams (imports, watches, subscriptions) have no deadline
unless given one: they last as long as their data. Failures raise `HeraldError`
(services.client.errors). The generated stubs stay reachable as `herald.directory`,
`.segments`, `.campaigns`, `.deliveries` and `.messages`.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs, campaign_service_pb2_grpc
from herald.delivery.v1 import (delivery_pb2, delivery_service_pb2 as ds, delivery_service_pb2_grpc,
                                message_service_pb2 as ms, message_service_pb2_grpc)
from herald.segment.v1 import (directory_pb2, directory_service_pb2 as dir_s, directory_service_pb2_grpc,
                               segment_pb2, segment_service_pb2 as ss, segment_service_pb2_grpc)
from services.client.errors import HeraldError, Unavailable, from_rpc_error
from services.client.messages import build, sort_params, timestamp
from services.kit.auth import make_token
from services.kit.clients import open_channel
from services.kit.config import Settings, settings_from_env
from services.kit.limits import MAX_USERS_PER_CALL
from services.kit.retry import call_idempotent

TERMINAL = (campaign_pb2.CAMPAIGN_STATUS_COMPLETED, campaign_pb2.CAMPAIGN_STATUS_STOPPED)
DEFAULT_TIMEOUT_S = 30.0
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.05, 1.0  # UNAVAILABLE: waits doubling from 50 ms to 1 s, jittered

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_M = TypeVar("_M", bound=Message)
Plain = Mapping[str, Any]
Sort = Iterable[Any] | None
Moment = datetime | str | None


class HeraldClient:
    def __init__(self, *, segment_addr: str, campaign_addr: str, delivery_addr: str, token: str,
                 ca_file: str = "", timeout: float = DEFAULT_TIMEOUT_S, max_retry_wait_s: float = 10.0,
                 retry_unavailable_s: float = 5.0, reconnect_delay_s: float = 0.5) -> None:
        self.timeout = timeout
        self.max_retry_wait_s = max_retry_wait_s
        self.retry_unavailable_s = retry_unavailable_s
        self.reconnect_delay_s = reconnect_delay_s
        self._channels = [open_channel(addr, token=token, ca_file=ca_file)
                          for addr in (segment_addr, campaign_addr, delivery_addr)]
        segment, campaign, delivery = self._channels
        self.directory = directory_service_pb2_grpc.DirectoryServiceStub(segment)
        self.segments = segment_service_pb2_grpc.SegmentServiceStub(segment)
        self.campaigns = campaign_service_pb2_grpc.CampaignServiceStub(campaign)
        self.deliveries = delivery_service_pb2_grpc.DeliveryServiceStub(delivery)
        self.messages = message_service_pb2_grpc.MessageServiceStub(delivery)

    @classmethod
    def from_settings(cls, settings: Settings, subject: str = "client", **options: Any) -> "HeraldClient":
        """Dials each service's target (`HERALD_<SERVICE>_TARGET`, else its address) with a token
        from the API secret in force; never makes a secret (ConfigError when there is none)."""
        settings = settings.with_existing_secret()
        return cls(segment_addr=settings.target("segment"), campaign_addr=settings.target("campaign"),
                   delivery_addr=settings.target("delivery"), token=make_token(settings.api_secret, subject),
                   ca_file=settings.tls_ca_file, **options)

    @classmethod
    def from_env(cls, subject: str = "client", **options: Any) -> "HeraldClient":
        return cls.from_settings(settings_from_env(), subject, **options)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def __aenter__(self) -> "HeraldClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @staticmethod
    async def idempotent(rpc: grpc.aio.UnaryUnaryMultiCallable[_Request, _Response], request: _Request, *,
                         timeout: float = DEFAULT_TIMEOUT_S) -> _Response:
        """Calls a raw stub's idempotent unary RPC, retrying UNAVAILABLE with jittered backoff."""
        return await call_idempotent(rpc, request, timeout=timeout)

    # -- users, channels and devices (DirectoryService) -----------------------------------------

    async def upsert_users(self, users: Iterable[Plain | directory_pb2.User], *,
                           timeout: float | None = None) -> list[directory_pb2.User]:
        """Creates or replaces up to 10,000 users (`custom` kept whole)."""
        request = dir_s.UpsertUsersRequest(users=[build(directory_pb2.User, u) for u in users])
        return list((await self._call(self.directory.UpsertUsers, request, True, timeout)).users)

    async def get_users(self, ids: Iterable[str], *, timeout: float | None = None) -> dir_s.GetUsersResponse:
        """The users found (`users`) and the ids that are not (`missing_ids`)."""
        return await self._call(self.directory.GetUsers, dir_s.GetUsersRequest(ids=list(ids)), True, timeout)

    async def query_users(self, filter: Plain | None = None, sort: Sort = None, limit: int = 0, next: str = "",
                          prev: str = "", *, timeout: float | None = None) -> dir_s.QueryUsersResponse:
        request = _query(dir_s.QueryUsersRequest, filter, sort, limit, next, prev)
        return await self._call(self.directory.QueryUsers, request, True, timeout)

    def iter_users(self, filter: Plain | None = None, sort: Sort = None, page_size: int = 0
                   ) -> AsyncIterator[directory_pb2.User]:
        return self._pages(self.directory.QueryUsers, _query(dir_s.QueryUsersRequest, filter, sort, page_size),
                           "users")

    async def delete_users(self, ids: Iterable[str], *, timeout: float | None = None) -> int:
        request = dir_s.DeleteUsersRequest(ids=list(ids))
        return (await self._call(self.directory.DeleteUsers, request, False, timeout)).deleted_count

    async def import_users(self, users: Iterable[Plain | directory_pb2.User] | AsyncIterable[Plain | directory_pb2.User],
                           *, chunk_size: int = 1000, on_progress: Callable[[int], None] | None = None,
                           timeout: float | None = None) -> int:
        """Streams users from any iterable (sync or async) in chunks, each committed as it arrives;
        `on_progress(n)` hears the number sent so far. Returns the number imported. Not retried:
        the iterable is consumed (re-running it is safe, users are upserted)."""
        if not 0 < chunk_size <= MAX_USERS_PER_CALL:
            raise ValueError(f"chunk_size must be 1..{MAX_USERS_PER_CALL}")

        async def chunks() -> AsyncIterator[dir_s.ImportUsersRequest]:
            chunk: list[directory_pb2.User] = []
            sent = 0
            async for user in _aiter(users):
                chunk.append(build(directory_pb2.User, user))
                if len(chunk) == chunk_size:
                    yield dir_s.ImportUsersRequest(users=chunk)
                    sent, chunk = sent + len(chunk), []
                    if on_progress:
                        on_progress(sent)
            if chunk:
                yield dir_s.ImportUsersRequest(users=chunk)
                if on_progress:
                    on_progress(sent + len(chunk))

        try:
            reply = await self.directory.ImportUsers(chunks(), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return reply.imported_count

    async def upsert_channels(self, channels: Iterable[Plain | directory_pb2.Channel], *,
                              timeout: float | None = None) -> list[directory_pb2.Channel]:
        """Creates or replaces up to 1,000 channels with their members."""
        request = dir_s.UpsertChannelsRequest(channels=[build(directory_pb2.Channel, c) for c in channels])
        return list((await self._call(self.directory.UpsertChannels, request, True, timeout)).channels)

    async def query_channels(self, filter: Plain | None = None, sort: Sort = None, limit: int = 0, next: str = "",
                             prev: str = "", *, timeout: float | None = None) -> dir_s.QueryChannelsResponse:
        request = _query(dir_s.QueryChannelsRequest, filter, sort, limit, next, prev)
        return await self._call(self.directory.QueryChannels, request, True, timeout)

    def iter_channels(self, filter: Plain | None = None, sort: Sort = None, page_size: int = 0
                      ) -> AsyncIterator[directory_pb2.Channel]:
        request = _query(dir_s.QueryChannelsRequest, filter, sort, page_size)
        return self._pages(self.directory.QueryChannels, request, "channels")

    async def upsert_devices(self, devices: Iterable[Plain | directory_pb2.Device], *,
                             timeout: float | None = None) -> list[directory_pb2.Device]:
        """Stores push devices (`provider` `webpush` or `http`; see the README's push section)."""
        request = dir_s.UpsertDevicesRequest(devices=[build(directory_pb2.Device, d) for d in devices])
        return list((await self._call(self.directory.UpsertDevices, request, True, timeout)).devices)

    async def list_devices(self, user_ids: Iterable[str], *,
                           timeout: float | None = None) -> list[directory_pb2.Device]:
        request = dir_s.ListDevicesRequest(user_ids=list(user_ids))
        return list((await self._call(self.directory.ListDevices, request, True, timeout)).devices)

    async def delete_devices(self, user_id: str, ids: Iterable[str], *, timeout: float | None = None) -> int:
        request = dir_s.DeleteDevicesRequest(user_id=user_id, ids=list(ids))
        return (await self._call(self.directory.DeleteDevices, request, True, timeout)).deleted_count

    # -- segments (SegmentService) --------------------------------------------------------------

    async def create_segment(self, type: str | int, *, id: str = "", name: str = "", description: str = "",
                             filter: Plain | None = None, all_users: bool = False, all_sender_channels: bool = False,
                             timeout: float | None = None) -> segment_pb2.Segment:
        """A `"user"` or `"channel"` segment: a filter, all users / all the sender's channels, or
        (none of them) a manual list filled with `add_segment_targets`."""
        request = build(ss.CreateSegmentRequest, id=id, type=type, name=name, description=description,
                        filter=filter, all_users=all_users, all_sender_channels=all_sender_channels)
        return (await self._call(self.segments.CreateSegment, request, False, timeout)).segment

    async def get_segment(self, id: str, *, timeout: float | None = None) -> segment_pb2.Segment:
        return (await self._call(self.segments.GetSegment, ss.GetSegmentRequest(id=id), True, timeout)).segment

    async def update_segment(self, id: str, *, name: str | None = None, description: str | None = None,
                             filter: Plain | None = None, timeout: float | None = None) -> segment_pb2.Segment:
        """Changes only the fields given."""
        request = build(ss.UpdateSegmentRequest, id=id, name=name, description=description, filter=filter)
        return (await self._call(self.segments.UpdateSegment, request, True, timeout)).segment

    async def delete_segment(self, id: str, *, timeout: float | None = None) -> None:
        await self._call(self.segments.DeleteSegment, ss.DeleteSegmentRequest(id=id), False, timeout)

    async def query_segments(self, filter: Plain | None = None, sort: Sort = None, limit: int = 0, next: str = "",
                             prev: str = "", *, timeout: float | None = None) -> ss.QuerySegmentsResponse:
        request = _query(ss.QuerySegmentsRequest, filter, sort, limit, next, prev)
        return await self._call(self.segments.QuerySegments, request, True, timeout)

    def iter_segments(self, filter: Plain | None = None, sort: Sort = None, page_size: int = 0
                      ) -> AsyncIterator[segment_pb2.Segment]:
        request = _query(ss.QuerySegmentsRequest, filter, sort, page_size)
        return self._pages(self.segments.QuerySegments, request, "segments")

    async def add_segment_targets(self, id: str, target_ids: Iterable[str], *,
                                  timeout: float | None = None) -> segment_pb2.Segment:
        """Adds 1..10,000 user ids or channel cids; returns the segment with its new size."""
        request = ss.AddSegmentTargetsRequest(id=id, target_ids=list(target_ids))
        return (await self._call(self.segments.AddSegmentTargets, request, True, timeout)).segment

    async def delete_segment_targets(self, id: str, target_ids: Iterable[str], *,
                                     timeout: float | None = None) -> segment_pb2.Segment:
        request = ss.DeleteSegmentTargetsRequest(id=id, target_ids=list(target_ids))
        return (await self._call(self.segments.DeleteSegmentTargets, request, True, timeout)).segment

    async def segment_target_exists(self, id: str, target_id: str, *, timeout: float | None = None) -> bool:
        request = ss.SegmentTargetExistsRequest(id=id, target_id=target_id)
        return (await self._call(self.segments.SegmentTargetExists, request, True, timeout)).exists

    async def query_segment_targets(self, id: str, filter: Plain | None = None, sort: Sort = None, limit: int = 0,
                                    next: str = "", prev: str = "", *,
                                    timeout: float | None = None) -> ss.QuerySegmentTargetsResponse:
        request = _query(ss.QuerySegmentTargetsRequest, filter, sort, limit, next, prev, id=id)
        return await self._call(self.segments.QuerySegmentTargets, request, True, timeout)

    def iter_segment_targets(self, id: str, filter: Plain | None = None, sort: Sort = None, page_size: int = 0
                             ) -> AsyncIterator[segment_pb2.SegmentTarget]:
        request = _query(ss.QuerySegmentTargetsRequest, filter, sort, page_size, id=id)
        return self._pages(self.segments.QuerySegmentTargets, request, "targets")

    async def count_recipients(self, *, segment_ids: Iterable[str] = (), user_ids: Iterable[str] = (),
                               sender_id: str = "", timeout: float | None = None) -> int:
        """The deduplicated audience of segments or user ids, the sender left out."""
        request = ss.CountRecipientsRequest(segment_ids=list(segment_ids), user_ids=list(user_ids),
                                            sender_id=sender_id)
        return (await self._call(self.segments.CountRecipients, request, True, timeout)).count

    # -- campaigns (CampaignService) ------------------------------------------------------------

    async def create_campaign(self, data: Plain | None = None, *, timeout: float | None = None,
                              **fields: Any) -> campaign_pb2.Campaign:
        """A draft campaign from a dict (as `herald campaigns create FILE.json` reads) and/or
        keyword arguments: `id`, `name`, `sender_id`, `segment_ids` or `user_ids`,
        `message_template={"text": …}`, `channel_template={"type": …}`, `create_channels`, …"""
        request = build(cs.CreateCampaignRequest, data, **fields)
        return (await self._call(self.campaigns.CreateCampaign, request, False, timeout)).campaign

    async def get_campaign(self, id: str, *, timeout: float | None = None) -> campaign_pb2.Campaign:
        return (await self._call(self.campaigns.GetCampaign, cs.GetCampaignRequest(id=id), True, timeout)).campaign

    async def update_campaign(self, id: str, data: Plain | None = None, *, timeout: float | None = None,
                              **fields: Any) -> campaign_pb2.Campaign:
        """Replaces every writable field (draft or scheduled campaigns): pass them all. Of a paused
        campaign only name, description and message_template may differ from what it has."""
        request = build(cs.UpdateCampaignRequest, data, **fields, id=id)
        return (await self._call(self.campaigns.UpdateCampaign, request, True, timeout)).campaign

    async def delete_campaign(self, id: str, *, timeout: float | None = None) -> None:
        await self._call(self.campaigns.DeleteCampaign, cs.DeleteCampaignRequest(id=id), False, timeout)

    async def query_campaigns(self, filter: Plain | None = None, sort: Sort = None, limit: int = 0, next: str = "",
                              prev: str = "", *, user_limit: int = 0,
                              timeout: float | None = None) -> cs.QueryCampaignsResponse:
        request = _query(cs.QueryCampaignsRequest, filter, sort, limit, next, prev, user_limit=user_limit)
        return await self._call(self.campaigns.QueryCampaigns, request, True, timeout)

    def iter_campaigns(self, filter: Plain | None = None, sort: Sort = None, page_size: int = 0
                       ) -> AsyncIterator[campaign_pb2.Campaign]:
        request = _query(cs.QueryCampaignsRequest, filter, sort, page_size)
        return self._pages(self.campaigns.QueryCampaigns, request, "campaigns")

    async def start_campaign(self, id: str, scheduled_for: Moment = None, stop_at: Moment = None, *,
                             timeout: float | None = None) -> campaign_pb2.Campaign:
        """Starts a draft now, or at `scheduled_for` (reschedules a scheduled one); `stop_at`
        stops it then. Not retried: a campaign is sent once."""
        request = cs.StartCampaignRequest(id=id)
        if scheduled_for is not None:
            request.scheduled_for.CopyFrom(timestamp(scheduled_for))
        if stop_at is not None:
            request.stop_at.CopyFrom(timestamp(stop_at))
        return (await self._call(self.campaigns.StartCampaign, request, False, timeout)).campaign

    async def stop_campaign(self, id: str, *, timeout: float | None = None) -> campaign_pb2.Campaign:
        return (await self._call(self.campaigns.StopCampaign, cs.StopCampaignRequest(id=id), False, timeout)).campaign

    async def pause_campaign(self, id: str, *, timeout: float | None = None) -> campaign_pb2.Campaign:
        """Halts a sending campaign between batches (`paused`); a paused one comes back as it is."""
        return (await self._call(self.campaigns.PauseCampaign, cs.PauseCampaignRequest(id=id), True, timeout)).campaign

    async def resume_campaign(self, id: str, *, timeout: float | None = None) -> campaign_pb2.Campaign:
        """Continues a paused campaign from where it halted, with its text as it is now."""
        return (await self._call(self.campaigns.ResumeCampaign, cs.ResumeCampaignRequest(id=id), True,
                                 timeout)).campaign

    async def preview_campaign(self, id: str, *, receiver_id: str = "", cid: str = "",
                               timeout: float | None = None) -> campaign_pb2.CampaignPreview:
        """What one recipient would get, rendered by the sending code, in any status; nothing is
        written. Give `receiver_id` (user audiences) or `cid` (channel audiences). A recipient
        that would be skipped or failed comes back with its `status` and `reason`."""
        request = cs.PreviewCampaignRequest(id=id, receiver_id=receiver_id, cid=cid)
        return (await self._call(self.campaigns.PreviewCampaign, request, True, timeout)).preview

    async def send_test_campaign(self, id: str, *, user_ids: str | Iterable[str] = (), cids: str | Iterable[str] = (),
                                 request_id: str | None = None,
                                 timeout: float | None = None) -> cs.SendTestCampaignResponse:
        """Sends real test messages (`custom.test` true, ids of their own) to up to 10 users
        (`user_ids`, user audiences) or channels (`cids`, channel audiences), in any status but in
        progress or paused: events and push as for any message, counted in the monthly capacity,
        never in the campaign's stats. The answer's `recipients` say, in the order named, what each got
        (PREVIEW_STATUS_SENT and the `message`) or why not (`status`, `reason`). Retried on
        UNAVAILABLE with one `request_id` (made here when not given; in the answer), so a retry
        sends nobody twice."""
        request = cs.SendTestCampaignRequest(id=id, user_ids=_ids(user_ids), cids=_ids(cids),
                                             request_id=request_id or str(uuid.uuid4()))
        return await self._call(self.campaigns.SendTestCampaign, request, True, timeout)

    async def watch_campaign(self, id: str) -> AsyncIterator[campaign_pb2.Campaign]:
        """The campaign at once, then as it changes, until it completes or stops; reconnects when
        campaign_svc restarts (its streams end with UNAVAILABLE)."""
        async for update in self._watch(lambda: self.campaigns.WatchCampaign(cs.WatchCampaignRequest(id=id))):
            yield update.campaign
            if update.campaign.status in TERMINAL:
                return

    async def get_usage(self, month: str | None = None, *, timeout: float | None = None) -> cs.GetUsageResponse:
        """A calendar month's messages against the monthly capacity: `month` "YYYY-MM" (UTC; None:
        the current month), `messages_sent`, `capacity` (0: unlimited) and `remaining` (unset,
        `HasField("remaining")` False, when unlimited)."""
        request = cs.GetUsageRequest(month=month or "")
        return await self._call(self.campaigns.GetUsage, request, True, timeout)

    # -- deliveries and recipients (DeliveryService) --------------------------------------------

    async def get_delivery(self, campaign_id: str, *, timeout: float | None = None) -> delivery_pb2.Delivery:
        request = ds.GetDeliveryRequest(campaign_id=campaign_id)
        return (await self._call(self.deliveries.GetDelivery, request, True, timeout)).delivery

    async def batch_get_deliveries(self, campaign_ids: Iterable[str], *,
                                   timeout: float | None = None) -> list[delivery_pb2.Delivery]:
        request = ds.BatchGetDeliveriesRequest(campaign_ids=list(campaign_ids))
        return list((await self._call(self.deliveries.BatchGetDeliveries, request, True, timeout)).deliveries)

    async def watch_delivery(self, campaign_id: str) -> AsyncIterator[delivery_pb2.Delivery]:
        """A delivery's progress until it ends; reconnects on UNAVAILABLE."""
        request = ds.WatchDeliveryRequest(campaign_id=campaign_id)
        async for update in self._watch(lambda: self.deliveries.WatchDelivery(request)):
            yield update.delivery
            if update.delivery.status in TERMINAL:
                return

    async def query_recipients(self, filter: Plain | None = None, sort: Sort = None, limit: int = 0,
                               next: str = "", prev: str = "", *,
                               timeout: float | None = None) -> ds.QueryRecipientsResponse:
        """Who was sent, skipped or failed and why (`filter` needs `campaign_id`)."""
        request = _query(ds.QueryRecipientsRequest, filter, sort, limit, next, prev)
        return await self._call(self.deliveries.QueryRecipients, request, True, timeout)

    def iter_recipients(self, filter: Plain | None = None, sort: Sort = None, page_size: int = 0
                        ) -> AsyncIterator[delivery_pb2.RecipientOutcome]:
        request = _query(ds.QueryRecipientsRequest, filter, sort, page_size)
        return self._pages(self.deliveries.QueryRecipients, request, "recipients")

    async def publish_event(self, event: Plain | delivery_pb2.Event, *,
                            timeout: float | None = None) -> delivery_pb2.Event:
        """Idempotent by the event's id."""
        request = ds.PublishEventRequest(event=build(delivery_pb2.Event, event))
        return (await self._call(self.deliveries.PublishEvent, request, True, timeout)).event

    # -- messages, events and dead letters (MessageService) -------------------------------------

    async def query_messages(self, filter: Plain | None = None, sort: Sort = None, limit: int = 0, next: str = "",
                             prev: str = "", *, timeout: float | None = None) -> ms.QueryMessagesResponse:
        request = _query(ms.QueryMessagesRequest, filter, sort, limit, next, prev)
        return await self._call(self.messages.QueryMessages, request, True, timeout)

    def iter_messages(self, filter: Plain | None = None, sort: Sort = None, page_size: int = 0
                      ) -> AsyncIterator[delivery_pb2.Message]:
        request = _query(ms.QueryMessagesRequest, filter, sort, page_size)
        return self._pages(self.messages.QueryMessages, request, "messages")

    async def mark_read(self, user_id: str, cid: str, *, timeout: float | None = None) -> int:
        """A user read a channel (counts in the campaign's `stats_users_read`)."""
        request = ms.MarkReadRequest(user_id=user_id, cid=cid)
        return (await self._call(self.messages.MarkRead, request, True, timeout)).marked_count

    async def subscribe_events(self, user_ids: Iterable[str], after_sequence: int = 0,
                               types: Iterable[str] = ()) -> AsyncIterator[delivery_pb2.Event]:
        """The `channel.created` / `message.new` events for these users after `after_sequence`
        (0: from now), live and endless; when delivery_svc restarts it resumes after the last
        sequence it yielded, so no event is missed or repeated."""
        user_ids, types = list(user_ids), list(types)
        last = after_sequence

        def subscribe() -> Any:
            return self.messages.SubscribeEvents(
                ms.SubscribeEventsRequest(user_ids=user_ids, after_sequence=last, types=types))

        async for update in self._watch(subscribe):
            last = update.event.sequence
            yield update.event

    async def query_dead_letters(self, filter: Plain | None = None, sort: Sort = None, limit: int = 0,
                                 next: str = "", prev: str = "", *,
                                 timeout: float | None = None) -> ms.QueryDeadLettersResponse:
        request = _query(ms.QueryDeadLettersRequest, filter, sort, limit, next, prev)
        return await self._call(self.messages.QueryDeadLetters, request, True, timeout)

    def iter_dead_letters(self, filter: Plain | None = None, sort: Sort = None, page_size: int = 0
                          ) -> AsyncIterator[delivery_pb2.DeadLetter]:
        request = _query(ms.QueryDeadLettersRequest, filter, sort, page_size)
        return self._pages(self.messages.QueryDeadLetters, request, "dead_letters")

    async def replay_dead_letters(self, ids: Iterable[str] = (), *, all: bool = False, filter: Plain | None = None,
                                  timeout: float | None = None) -> int:
        """Sends dead letters again with their ids: these, those of a filter, or `all`."""
        request = build(ms.ReplayDeadLettersRequest, ids=list(ids), all=all, filter=filter)
        return (await self._call(self.messages.ReplayDeadLetters, request, False, timeout)).replayed_count

    async def get_push_config(self, *, timeout: float | None = None) -> ms.GetPushConfigResponse:
        """The VAPID public key browsers subscribe with."""
        return await self._call(self.messages.GetPushConfig, ms.GetPushConfigRequest(), True, timeout)

    # -- how calls are made ---------------------------------------------------------------------

    async def _call(self, rpc: grpc.aio.UnaryUnaryMultiCallable[_Request, _Response], request: _Request,
                    idempotent: bool, timeout: float | None) -> _Response:
        """One unary call, retried as the module docstring says. The deadline covers every
        attempt and wait, so `timeout=2` never takes 40 s of retries. A plain loop, not
        tenacity's: its set-up cost about 60 µs of CPU a call, +16 % on the raw stub call
        (bench.client_bench)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        attempt, first_failure = 0, 0.0
        while True:
            try:
                return await rpc(request, timeout=deadline - loop.time())
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc)
            now = loop.time()
            first_failure = now if attempt == 0 else first_failure
            delay = self._retry_delay(error, idempotent, attempt, now - first_failure)
            if delay is None or now + delay >= deadline:
                raise error
            await asyncio.sleep(delay)
            attempt += 1

    def _retry_delay(self, error: HeraldError, idempotent: bool, attempt: int,
                     failing_for: float) -> float | None:
        """How long to wait before calling again, or None when the error is final. Retried:
        UNAVAILABLE on an idempotent call (jittered backoff, until it has failed for
        `retry_unavailable_s`: long enough for a service to restart), and RESOURCE_EXHAUSTED
        with a RetryInfo delay no longer than `max_retry_wait_s` (refused before anything was
        done, so safe on any call)."""
        if isinstance(error, Unavailable):
            if not idempotent or failing_for >= self.retry_unavailable_s:
                return None
            return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** min(attempt, 16)) * random.uniform(0.5, 1.0)
        if error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and error.retry_after_s is not None \
                and error.retry_after_s <= self.max_retry_wait_s:
            return error.retry_after_s
        return None

    async def _pages(self, rpc: grpc.aio.UnaryUnaryMultiCallable[Any, Any], request: Any,
                     items: str) -> AsyncIterator[Any]:
        """Every item of a keyset-paged query, page after page."""
        while True:
            page = await self._call(rpc, request, True, None)
            for item in getattr(page, items):
                yield item
            if not page.next:
                return
            request.next = page.next

    async def _watch(self, open_stream: Callable[[], Any]) -> AsyncIterator[Any]:
        """A server stream's messages, opened again after UNAVAILABLE (a restart ends streams so)."""
        while True:
            try:
                async for update in open_stream():
                    yield update
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise from_rpc_error(exc) from None
                await asyncio.sleep(self.reconnect_delay_s)


def _query(cls: type[_M], filter: Plain | None, sort: Sort, limit: int, next: str = "", prev: str = "",
           **fields: Any) -> _M:
    request = build(cls, filter=filter, limit=limit, next=next, prev=prev, **fields)
    request.sort.extend(sort_params(sort))  # type: ignore[attr-defined]  # every query request has sort
    return request


def _ids(ids: str | Iterable[str]) -> list[str]:
    """A list of ids; one id alone (a str) is a list of one, never its characters."""
    return [ids] if isinstance(ids, str) else list(ids)


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
