"""A campaign's life (DESIGN §4, §10.2): create, update, delete, start or schedule, pause and
resume, stop.

draft → (scheduled →) in_progress ⇄ paused → completed, or stopped from scheduled, in_progress
or paused. Every transition is a conditional UPDATE on the status it expects, so concurrent
calls (or two instances) never both make it; an illegal one is FAILED_PRECONDITION naming the
status. A paused campaign may change only its name, description and message template.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Mapping

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2
from services.campaign_svc import convert, events, reasons, rules, store
from services.kit.clock import Clock
from services.campaign_svc.feeds import Feeds
from services.campaign_svc.sending import DeliveryRefused, Sending
from services.campaign_svc.store import Status
from services.campaign_svc.upstream import Upstream
from services.kit.db import transaction, write_transaction
from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Violations
from services.kit.fields import check_id
from services.kit.protos import from_timestamp

EDITABLE = (Status.DRAFT, Status.SCHEDULED)
# What UpdateCampaign may change in a paused campaign (DESIGN §10.2); the rest must stay as it is.
EDITABLE_WHEN_PAUSED = ("name", "description", "message_template")


def _describe(status: str) -> str:
    return status.replace("_", " ")


class Campaigns:
    def __init__(self, sessions: async_sessionmaker, upstream: Upstream, clock: Clock, feeds: Feeds,
                 sending: Sending) -> None:
        self.sessions = sessions
        self.upstream = upstream
        self.clock = clock
        self.feeds = feeds
        self.sending = sending

    # --- reading ------------------------------------------------------------------------------

    async def get(self, campaign_id: str) -> Mapping:
        v = Violations()
        check_id(v, campaign_id, "id")
        v.raise_if_any()
        async with transaction(self.sessions) as session:
            row = await store.get_campaign(session, campaign_id)
        if row is None:
            raise NotFound(f"campaign {campaign_id} does not exist", reason=reasons.CAMPAIGN_NOT_FOUND)
        return row

    async def load(self, campaign_id: str) -> campaign_pb2.Campaign | None:
        async with transaction(self.sessions) as session:
            row = await store.get_campaign(session, campaign_id)
        return convert.campaign(row) if row is not None else None

    async def stamps(self, campaign_ids: list[str]) -> dict[str, tuple[int, dt.datetime]]:
        """The stored campaigns' (status, updated_at) by id, leaving out those that do not exist:
        the watchers' cheap look at whether they changed (Feeds)."""
        async with transaction(self.sessions) as session:
            rows = await store.campaign_stamps(session, campaign_ids)
        return {row.id: (convert.STATUS_TO_ENUM[row.status], row.updated_at) for row in rows}

    # --- create, update, delete ---------------------------------------------------------------

    async def create(self, request: campaign_service_pb2.CreateCampaignRequest) -> Mapping:
        # In a worker thread: compiling and trial-rendering the templates may cost a render budget.
        fields = await asyncio.to_thread(rules.check_locally, request, id_required=False)
        if fields.id:
            async with transaction(self.sessions) as session:
                if await store.campaign_exists(session, fields.id):
                    raise AlreadyExists(f"campaign {fields.id} already exists", reason=reasons.CAMPAIGN_ALREADY_EXISTS)
        else:
            fields.id = str(uuid.uuid4())
        await rules.check_remotely(fields, request, self.upstream)
        now = self.clock.now()
        values = {**fields.values(), "instance": str(uuid.uuid4()), "status": Status.DRAFT,
                  "created_at": now, "updated_at": now}
        try:
            async with write_transaction(self.sessions, urgent=True) as session:
                await store.insert_campaign(session, values)
                row = await store.get_campaign(session, fields.id)
        except IntegrityError:
            raise AlreadyExists(f"campaign {fields.id} already exists",
                                reason=reasons.CAMPAIGN_ALREADY_EXISTS) from None
        return _found(row, fields.id)

    async def update(self, request: campaign_service_pb2.UpdateCampaignRequest) -> Mapping:
        fields = await asyncio.to_thread(rules.check_locally, request, id_required=True)
        row = await self.get(fields.id)
        if row["status"] == Status.PAUSED:
            return await self._update_paused(row, fields, request)
        await self._editable(row)
        await rules.check_remotely(fields, request, self.upstream)
        async with write_transaction(self.sessions, urgent=True) as session:
            changed = await store.replace_campaign(session, fields.id, {**fields.values(),
                                                                       "updated_at": self.clock.now()}, EDITABLE)
            row = await store.get_campaign(session, fields.id)
        if not changed:
            await self._editable(row, fields.id)
        row = _found(row, fields.id)
        self.feeds.publish(convert.campaign(row))
        return row

    async def _update_paused(self, row: Mapping, fields: rules.CampaignFields,
                             request: campaign_service_pb2.UpdateCampaignRequest) -> Mapping:
        """Changes a paused campaign's name, description and message template (its recipients
        not sent yet get the new text on resume); any other field must be as it is."""
        wanted = fields.values()
        for name, value in wanted.items():
            if name not in EDITABLE_WHEN_PAUSED and name not in ("id", "segment_type") and value != row[name]:
                raise FailedPrecondition(f"campaign {row['id']} is paused: only name, description and "
                                         f"message_template may change, not {name}",
                                         reason=reasons.CAMPAIGN_NOT_EDITABLE, metadata={"field": name})
        await rules.check_remotely(fields, request, self.upstream)  # e.g. `receiver` in a channel campaign
        values = {name: wanted[name] for name in EDITABLE_WHEN_PAUSED}
        async with write_transaction(self.sessions, urgent=True) as session:
            changed = await store.transition(session, row["id"], Status.PAUSED, {**values, "updated_at": self.clock.now()})
            current = await store.get_campaign(session, row["id"])
        if not changed:  # resumed or stopped meanwhile
            await self._editable(current, row["id"])
        current = _found(current, row["id"])
        self.feeds.publish(convert.campaign(current))
        return current

    async def _editable(self, row: Mapping | None, campaign_id: str = "") -> None:
        if row is None:
            raise NotFound(f"campaign {campaign_id} does not exist", reason=reasons.CAMPAIGN_NOT_FOUND)
        if row["status"] not in EDITABLE:
            raise FailedPrecondition(f"campaign {row['id']} is {_describe(row['status'])}; "
                                     "only a draft, scheduled or paused campaign can be updated",
                                     reason=reasons.CAMPAIGN_NOT_EDITABLE)

    async def delete(self, campaign_id: str) -> None:
        row = await self.get(campaign_id)
        async with write_transaction(self.sessions, urgent=True) as session:
            deleted = await store.delete_campaign(session, campaign_id, unless_status=Status.SENDING)
            if not deleted:
                row = await store.get_campaign(session, campaign_id)
        if not deleted:
            if row is None:
                raise NotFound(f"campaign {campaign_id} does not exist", reason=reasons.CAMPAIGN_NOT_FOUND)
            raise FailedPrecondition(f"campaign {campaign_id} is {_describe(row['status'])}; "
                                     "stop it before deleting it",
                                     reason=reasons.CAMPAIGN_NOT_DELETABLE)
        self.feeds.publish_deleted(campaign_id)

    # --- start and stop -----------------------------------------------------------------------

    async def start(self, request: campaign_service_pb2.StartCampaignRequest) -> Mapping:
        row = await self.get(request.id)  # the one read of the campaign: each step below knows its values
        if row["status"] not in EDITABLE:
            raise FailedPrecondition(f"campaign {row['id']} is {_describe(row['status'])}; only a draft or "
                                     "scheduled campaign can be started (a campaign is sent once)",
                                     reason=reasons.CAMPAIGN_NOT_STARTABLE)
        now = self.clock.now()
        start_at, stop_at = _time(request, "scheduled_for"), _time(request, "stop_at")
        if start_at is not None and start_at <= now:
            start_at = None  # a time in the past means now
        _check_stop_at(stop_at, start_at or now)
        if start_at is not None:
            return await self._schedule(row, start_at, stop_at)
        return await self._start_now(row, stop_at, now)

    async def _schedule(self, row: Mapping, start_at: dt.datetime, stop_at: dt.datetime | None) -> Mapping:
        values = {"status": Status.SCHEDULED, "scheduled_for": start_at, "stop_at": stop_at,
                  "updated_at": self.clock.now()}
        return await self._move(row, values)

    async def _start_now(self, row: Mapping, stop_at: dt.datetime | None, now: dt.datetime) -> Mapping:
        # Counted first: the campaign is in progress only with its audience counted, and a
        # segment service that cannot count leaves it as it was (UNAVAILABLE, nothing changed).
        total = await self.sending.count_audience(row)
        values = {"status": Status.IN_PROGRESS, "scheduled_for": None, "stop_at": stop_at, "updated_at": now,
                  "start_owner": self.sending.owner, "start_claimed_at": now, "delivery_started": False,
                  "recipients_total": total}
        undo = {key: row[key] for key in values}
        moved = await self._move(row, values)
        try:
            started = await self.sending.begin_moved(moved, undo=undo)
        except DeliveryRefused as refused:
            self.feeds.publish(convert.campaign(await self.get(row["id"])))
            raise refused.error from None
        # Following starts the delivery later if the delivery service was unreachable just now.
        self.sending.ensure_follower(row["id"])
        return started if started is not None else await self.get(row["id"])

    async def _move(self, row: Mapping, values: dict) -> Mapping:
        """Moves the campaign on from `row`, as it was read; returns it as moved (`row` with
        `values`, not read again). Every write of a campaign sets updated_at: matching it, the
        move is refused when anything changed since the read (an update landing meanwhile must
        not be sent with the audience counted and the snapshot taken before it)."""
        async with write_transaction(self.sessions, urgent=True) as session:
            moved = await store.transition(session, row["id"], row["status"], values,
                                           store.campaigns.c.updated_at == row["updated_at"])
            current = None if moved else await store.get_campaign(session, row["id"])
        if not moved:
            if current is None:
                raise NotFound(f"campaign {row['id']} does not exist", reason=reasons.CAMPAIGN_NOT_FOUND)
            raise FailedPrecondition(f"campaign {row['id']} is {_describe(current['status'])}; "
                                     "it changed while being started, look again", reason=reasons.CAMPAIGN_CHANGED)
        current = {**row, **values}
        self.feeds.publish(convert.campaign(current))
        return current

    async def stop(self, campaign_id: str) -> Mapping:
        for _ in range(3):  # the status may move under us (the scheduler starting it)
            row = await self.get(campaign_id)
            status = row["status"]
            if status == Status.SCHEDULED:
                ended, row = await self.sending.finish(campaign_id, Status.STOPPED,
                                                       reason=campaign_pb2.STOP_REASON_REQUESTED,
                                                       expected=Status.SCHEDULED)
                if ended and row is not None:
                    return row
                continue
            if status in Status.SENDING:
                # The campaign may complete, then be deleted, while its delivery is stopped.
                return _found(await self.sending.stop_running(campaign_id, campaign_pb2.STOP_REASON_REQUESTED),
                              campaign_id)
            if status == Status.COMPLETED:
                raise FailedPrecondition(f"campaign {campaign_id} is completed; "
                                         "a completed campaign cannot be stopped", reason=reasons.CAMPAIGN_COMPLETED)
            if status == Status.STOPPED:
                raise FailedPrecondition(f"campaign {campaign_id} is stopped already",
                                         reason=reasons.CAMPAIGN_ALREADY_STOPPED)
            raise FailedPrecondition(f"campaign {campaign_id} is {_describe(status)}; only a scheduled, "
                                     "in-progress or paused campaign can be stopped",
                                     reason=reasons.CAMPAIGN_NOT_STOPPABLE)
        raise FailedPrecondition(f"campaign {campaign_id} keeps changing; try again", reason=reasons.CAMPAIGN_CHANGED)

    async def pause(self, campaign_id: str) -> Mapping:
        """Halts an in-progress campaign between batches; a paused one is returned as it is."""
        row = await self.get(campaign_id)
        if row["status"] == Status.PAUSED:
            return row
        if row["status"] != Status.IN_PROGRESS:
            raise FailedPrecondition(f"campaign {campaign_id} is {_describe(row['status'])}; only an in-progress "
                                     "campaign can be paused", reason=reasons.CAMPAIGN_NOT_PAUSABLE)
        if not row["delivery_started"]:
            raise FailedPrecondition(f"campaign {campaign_id} is starting its delivery; pause it in a moment",
                                     reason=reasons.CAMPAIGN_CHANGED)
        return _found(await self.sending.pause_running(campaign_id), campaign_id)

    async def resume(self, campaign_id: str) -> Mapping:
        """Continues a paused campaign from its checkpoint, with its text as it is now; an
        in-progress one is returned as it is."""
        row = await self.get(campaign_id)
        if row["status"] == Status.IN_PROGRESS:
            return row
        if row["status"] != Status.PAUSED:
            raise FailedPrecondition(f"campaign {campaign_id} is {_describe(row['status'])}; only a paused "
                                     "campaign can be resumed", reason=reasons.CAMPAIGN_NOT_PAUSED)
        now = self.clock.now()
        values = {"status": Status.IN_PROGRESS, "delivery_started": False, "start_owner": self.sending.owner,
                  "start_claimed_at": now, "updated_at": now}
        async with write_transaction(self.sessions, urgent=True) as session:
            if not await store.transition(session, campaign_id, Status.PAUSED, values):
                raise FailedPrecondition(f"campaign {campaign_id} changed while being resumed, look again",
                                         reason=reasons.CAMPAIGN_CHANGED)
            await events.record(session, {**row, **values}, events.RESUMED, self.clock)
        self.sending.publisher.wake()
        self.feeds.publish(convert.campaign({**row, **values}))
        return _found(await self.sending.begin_resumed(campaign_id), campaign_id)


def _found(row: Mapping | None, campaign_id: str) -> Mapping:
    if row is None:
        raise NotFound(f"campaign {campaign_id} does not exist", reason=reasons.CAMPAIGN_NOT_FOUND)
    return row


def _time(request: campaign_service_pb2.StartCampaignRequest, field: str) -> dt.datetime | None:
    if not request.HasField(field):
        return None
    try:
        return from_timestamp(getattr(request, field))
    except (ValueError, OverflowError):
        raise InvalidArgument(field, "is not a valid time") from None


def _check_stop_at(stop_at: dt.datetime | None, start: dt.datetime) -> None:
    if stop_at is not None and stop_at <= start:
        raise InvalidArgument("stop_at", "must be in the future and after scheduled_for")
