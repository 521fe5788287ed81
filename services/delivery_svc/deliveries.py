"""Rules of DeliveryService: start, stop, read and watch deliveries, page the recipient log,
and take the campaign service's events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2
from services.delivery_svc import convert, reasons, store
from services.delivery_svc.engine import Engine
from services.delivery_svc.notifier import Notifier
from services.delivery_svc.render import CampaignTemplates
from services.delivery_svc.usage import check_room
from services.kit import campaign_rules, event_types
from services.kit.db import transaction, utcnow, write_transaction
from services.kit.errors import InvalidArgument, NotFound, Violations
from services.kit.fields import check_id, check_id_list
from services.kit.limits import (MAX_CID, MAX_DELIVERIES_PER_CALL, MAX_MEMBERS, MAX_STOP_MESSAGE, RECIPIENTS_PAGE,
                                 WATCH_MAX_INTERVAL_S, WATCH_MIN_INTERVAL_S)
from services.kit.filters import Field, FilterSpec, Kind, compile_filter, enum_aliases
from services.kit.paging import SortKey, keyset_page, parse_sort, resolve_limit

# How long StopDelivery waits for the run to end (and settle) before committing the stop itself.
STOP_WAIT_S = 5.0

_TARGET_OPERATORS = frozenset({"$eq", "$gt", "$gte", "$lt", "$lte", "$in"})
RECIPIENT_FILTER = FilterSpec({
    "campaign_id": Field(store.recipient_log.c.campaign_id, operators=frozenset({"$eq", "$in"})),
    "status": Field(store.recipient_log.c.status, Kind.ENUM,
                    values=enum_aliases(delivery_pb2.RecipientStatus, stored_as="number")),
    "target_id": Field(store.recipient_log.c.target_id, operators=_TARGET_OPERATORS),
})
EVENT_TYPES_FROM_CAMPAIGNS = frozenset(event_types.CAMPAIGN_EVENTS)
CAMPAIGN_ENDS = frozenset({"campaign.completed", "campaign.stopped"})
# How long PublishEvent of a campaign's end waits for its delivery's run to end (see publish_event).
RUN_END_WAIT_S = 30.0
# WatchDelivery reads the stored delivery again at least this often without a notice, while the
# run is in this process (otherwise at each heartbeat: another replica's writes notify nobody here).
WATCH_REREAD_S = 5.0
SNAPSHOT = "campaign."  # the prefix of a snapshot's fields in violations


def check_snapshot(campaign: campaign_pb2.Campaign) -> CampaignTemplates:
    """The snapshot by the campaign rules (services.kit.campaign_rules), so that a delivery never
    starts on what it (or the segment service) would refuse later; returns its templates,
    compiled (the run renders with them)."""
    v = Violations()
    check_id(v, campaign.id, "campaign.id")
    check_id(v, campaign.sender_id, "campaign.sender_id")
    campaign_rules.check_audience(v, campaign.segment_ids, campaign.user_ids, SNAPSHOT)
    campaign_rules.check_message_template(v, campaign.message_template, SNAPSHOT)
    channel_template = campaign.channel_template if campaign.HasField("channel_template") else None
    campaign_rules.check_channel_template(v, channel_template, campaign.create_channels, SNAPSHOT)
    campaign_rules.check_sender_options(v, campaign.sender_mode, campaign.sender_visibility, SNAPSHOT)
    campaign_rules.check_max_send_rate(v, campaign.max_send_rate, SNAPSHOT)
    v.check(campaign.stats.recipients_total >= 0, "campaign.stats.recipients_total", "must not be negative")
    v.raise_if_any()
    return CampaignTemplates(campaign)


class Deliveries:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], engine: Engine, notifier: Notifier, *,
                 monthly_capacity: int = 0) -> None:
        self.monthly_capacity = monthly_capacity
        self.sessions = sessions
        self.engine = engine
        self.notifier = notifier

    async def start(self, campaign: campaign_pb2.Campaign) -> delivery_pb2.Delivery:
        """Creates the delivery and launches it, or resumes it with this snapshot when it is
        paused; a retried start returns the existing one."""
        templates = await asyncio.to_thread(check_snapshot, campaign)  # compiling may take a while
        resumed = None
        async with write_transaction(self.sessions, urgent=True) as session:
            existing = await store.get_delivery(session, campaign.id)
            if existing is None:
                await check_room(session, self.monthly_capacity)  # a new delivery: refused once it is used up
            elif existing.status == store.PAUSED:
                resumed = await store.resume_delivery(session, campaign.id, campaign.SerializeToString(), utcnow())
            # The count campaign_svc took as the campaign started; a snapshot without one (0,
            # e.g. from an older campaign service) is counted by the engine.
            counted = campaign.stats.recipients_total or None
            created = await store.insert_delivery(session, campaign.id, campaign.SerializeToString(), counted,
                                                  utcnow(), self.engine.deps.lease)
        if created:
            self.engine.launch(campaign, templates)
        elif resumed is not None:
            await self.engine.relaunch(campaign, templates, resumed)
            self.notifier.notify(campaign.id)
        return await self.get(campaign.id)

    async def pause(self, campaign_id: str) -> delivery_pb2.Delivery:
        """Pauses an in-progress delivery (its runs end between batches: here at once, on other
        replicas at their next batch); any other is returned as it is."""
        _require_id(campaign_id, "campaign_id")
        async with write_transaction(self.sessions, urgent=True) as session:
            paused = await store.pause_delivery(session, campaign_id, utcnow())
        if paused:
            await self.engine.pause(campaign_id)
            self.notifier.notify(campaign_id)
        return await self.get(campaign_id)

    async def stop(self, campaign_id: str, reason: campaign_pb2.StopReason, message: str) -> delivery_pb2.Delivery:
        """Stops an in-progress delivery; a finished one is returned as it is."""
        _require_id(campaign_id, "campaign_id")
        if reason not in (campaign_pb2.STOP_REASON_REQUESTED, campaign_pb2.STOP_REASON_STOP_AT,
                          campaign_pb2.STOP_REASON_CAPACITY, campaign_pb2.STOP_REASON_ERROR):
            if reason != campaign_pb2.STOP_REASON_UNSPECIFIED:
                raise InvalidArgument("reason", "is not a known stop reason")
            reason = campaign_pb2.STOP_REASON_REQUESTED
        message = message[:MAX_STOP_MESSAGE]
        async with transaction(self.sessions) as session:
            row = await store.get_delivery(session, campaign_id)
        if row is None:
            raise NotFound(f"no delivery for campaign {campaign_id!r}", reason=reasons.DELIVERY_NOT_FOUND)
        if row.status in store.STOPPABLE:
            # The run commits the stop itself, with the channels of the batches it had ensured
            # but will not write. Without a run here, or when it does not end in time, the stop
            # is committed directly (a run still going settles on its own just after).
            await self.engine.stop(campaign_id, reason, message, STOP_WAIT_S)
            async with write_transaction(self.sessions, urgent=True) as session:
                stopped = await store.stop_delivery(session, campaign_id, reason, message, utcnow())
            if stopped:
                self.engine.request_stop(campaign_id, reason, message)
                self.notifier.notify(campaign_id)
        return await self.get(campaign_id)

    async def get(self, campaign_id: str) -> delivery_pb2.Delivery:
        _require_id(campaign_id, "campaign_id")
        async with transaction(self.sessions) as session:
            row, users_read = await store.get_delivery_read(session, campaign_id)
        if row is None:
            raise NotFound(f"no delivery for campaign {campaign_id!r}", reason=reasons.DELIVERY_NOT_FOUND)
        return convert.delivery(row, users_read, self._rate(row))

    async def batch_get(self, campaign_ids: list[str]) -> list[delivery_pb2.Delivery]:
        v = Violations()
        v.check(len(campaign_ids) <= MAX_DELIVERIES_PER_CALL, "campaign_ids", f"at most {MAX_DELIVERIES_PER_CALL} ids")
        for i, campaign_id in enumerate(campaign_ids):
            check_id(v, campaign_id, f"campaign_ids[{i}]")
        v.raise_if_any()
        if not campaign_ids:
            return []
        async with transaction(self.sessions) as session:
            rows = await store.get_deliveries(session, list(dict.fromkeys(campaign_ids)))
            users_read = await store.users_read_counts(session, [r.campaign_id for r in rows])
        by_id = {r.campaign_id: r for r in rows}
        return [convert.delivery(by_id[i], users_read.get(i, 0), self._rate(by_id[i]))
                for i in dict.fromkeys(campaign_ids) if i in by_id]

    def _rate(self, row: Row[Any]) -> float | None:
        return self.engine.rate(row.campaign_id) if row.status == store.IN_PROGRESS else None

    async def watch(self, campaign_id: str) -> AsyncIterator[delivery_pb2.Delivery]:
        """The state at once, then changes (≤4/s, ≥1/s while in progress), the terminal state last.
        This process's writes notify; a heartbeat after none repeats the last state read with the
        current rate, and the stored state is read again at least each WATCH_REREAD_S (a write
        of another process). Reading at each heartbeat cost a hundred campaigns sending at once
        a hundred reads a second."""
        changed = self.notifier.changed(campaign_id)
        read_at, current = time.monotonic(), await self.get(campaign_id)
        sent_at = 0.0
        while True:
            # A stopped delivery's run may still be settling its counters: the terminal state
            # goes out once the run has ended, so that it is the last word.
            final = current.status in store.TERMINAL and not self.engine.is_running(campaign_id)
            if final or current.status not in store.TERMINAL:
                sent_at = time.monotonic()
                yield current
            if final:
                return
            try:
                await asyncio.wait_for(changed.wait(), WATCH_MAX_INTERVAL_S)
            except TimeoutError:
                pass
            pause = WATCH_MIN_INTERVAL_S - (time.monotonic() - sent_at)
            if pause > 0:
                await asyncio.sleep(pause)
            # A run in another replica (PostgreSQL) notifies nobody here: read at every heartbeat.
            reread_s = WATCH_REREAD_S if self.engine.is_running(campaign_id) else WATCH_MAX_INTERVAL_S
            if not changed.is_set() and time.monotonic() - read_at < reread_s:
                current = self._with_current_rate(current)
                continue
            changed = self.notifier.changed(campaign_id)
            read_at, current = time.monotonic(), await self.get(campaign_id)

    def _with_current_rate(self, delivery: delivery_pb2.Delivery) -> delivery_pb2.Delivery:
        rate = self.engine.rate(delivery.campaign_id) if delivery.status == store.IN_PROGRESS else None
        if rate is None or rate == delivery.recipients_per_second:
            return delivery
        updated = delivery_pb2.Delivery()
        updated.CopyFrom(delivery)
        updated.recipients_per_second = rate
        return updated

    async def query_recipients(self, filter_: dict[str, Any] | None, sort: list[Any], limit: int, next_: str,
                               prev: str) -> tuple[list[delivery_pb2.RecipientOutcome], str, str]:
        log = store.recipient_log
        condition = compile_filter(RECIPIENT_FILTER, filter_)
        limit = resolve_limit(limit, RECIPIENTS_PAGE.default, RECIPIENTS_PAGE.max)
        keys = parse_sort(sort, {"target_id": log.c.target_id}, default=[("target_id", 1)], tie_breaker="target_id")
        # Pages run in (campaign_id, target_id) order, the log's primary key, in the target's direction.
        keys = [SortKey("campaign_id", log.c.campaign_id, descending=keys[0].descending), *keys]
        async with transaction(self.sessions) as session:
            page = await keyset_page(session, select(log).where(condition), keys, limit=limit, next=next_,
                                     prev=prev, fingerprint_of=filter_)
        return [convert.recipient_outcome(row) for row in page.rows], page.next, page.prev

    async def publish_event(self, event: delivery_pb2.Event) -> delivery_pb2.Event:
        """Stores a campaign.* event once per id; a retry returns the stored one."""
        v = Violations()
        check_id(v, event.id, "event.id")
        if v.check(bool(event.type), "event.type", "is required"):
            v.check(event.type in EVENT_TYPES_FROM_CAMPAIGNS, "event.type",
                    f"must be one of {', '.join(sorted(EVENT_TYPES_FROM_CAMPAIGNS))}")
        if v.check(event.HasField("campaign"), "event.campaign", "is required for campaign events"):
            check_id(v, event.campaign.id, "event.campaign.id")
        # What the columns hold must fit them (PostgreSQL refuses a longer value: INTERNAL).
        check_id(v, event.cid, "event.cid", required=False, limit=MAX_CID)
        check_id_list(v, event.user_ids, "event.user_ids", required=False, limit=MAX_MEMBERS)
        v.raise_if_any()
        # What the columns do not hold: the campaign, and whatever else the event carries.
        payload = delivery_pb2.Event()
        payload.CopyFrom(event)
        for column_held in ("sequence", "id", "type", "cid", "created_at", "user_ids"):
            payload.ClearField(column_held)
        created_at = event.created_at.ToDatetime().replace(tzinfo=utcnow().tzinfo) \
            if event.HasField("created_at") else utcnow()
        if event.type in CAMPAIGN_ENDS:
            # A run stopped slowly settles its last channels after StopDelivery answered: the
            # campaign's end goes into the log after them, so it is sequenced after all its events.
            await self.engine.wait_ended(event.campaign.id, RUN_END_WAIT_S)
        async with write_transaction(self.sessions, urgent=True) as session:
            await store.write_rows(session, store.events, [{
                "id": event.id, "type": event.type, "campaign_id": event.campaign.id, "cid": event.cid,
                "message_id": "", "user_ids": list(event.user_ids), "payload": payload.SerializeToString(),
                "created_at": created_at}])
            row = await store.get_event(session, event.id)
        return convert.event(row)


def _require_id(value: str, field: str) -> None:
    v = Violations()
    check_id(v, value, field)
    v.raise_if_any()
