"""EnsureChannels: the batched find-or-create of each recipient's channel (DESIGN §5).

Rules, per recipient:
- user target (receiver_id set): the channel is `type:id`; an empty id is derived from the sorted
  member ids (receiver, the spec's members, and the sender unless sender_mode is EXCLUDE), so the
  same members find the same channel. Missing and `create_channels` → created with `team`,
  `custom` and `created_by_id` = sender, members = receiver + spec members + sender (unless
  EXCLUDE; hidden or archived for the sender per sender_visibility). Missing otherwise →
  skipped with reason `channel_not_found`.
- channel target (cid set): the channel must exist (never created).
- existing channels: sender_mode INCLUDE adds the sender when missing; team and custom are left
  alone; show_channels unhides the channel for the receiver (channel targets: for every member
  but the sender).
- the outcome is stored per (campaign_id, recipient_id); asked again, the stored outcome is
  reported (created stays true), so a resumed campaign counts channels_created exactly.
- dry_run (a preview): the same rules answer what the call would find or create, and nothing
  is written; a channel it would create comes back as it would be made.

The whole batch is a fixed number of statements: one read of stored outcomes, one of channels,
one of members, then bulk writes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_service_pb2
from services.kit.db import utcnow
from services.kit.errors import Unavailable
from services.segment_svc import reasons, store
from services.segment_svc.convert import struct_to_dict

CHANNEL_NOT_FOUND = "channel_not_found"
MEMBER_ROLE = "channel_member"


def derived_channel_id(member_ids: set[str]) -> str:
    """The id of a channel named by its members: same members, same id."""
    digest = hashlib.sha256(json.dumps(sorted(member_ids)).encode()).hexdigest()[:40]
    return f"!members-{digest}"


@dataclass
class ChannelState:
    """A channel as the batch sees it: its row and members, with the changes made so far."""

    row: dict[str, Any]
    members: dict[str, dict[str, Any]]
    created_now: bool = False
    changed: bool = False


@dataclass
class Outcome:
    recipient_id: str
    cid: str = ""
    created: bool = False
    skip_reason: str = ""
    channel: ChannelState | None = None


@dataclass
class _Writes:
    channels: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)
    unhide: list[tuple[str, str]] = field(default_factory=list)


class _Batch:
    def __init__(self, request: directory_service_pb2.EnsureChannelsRequest, now: dt.datetime) -> None:
        self.request = request
        self.sender = request.sender_id
        self.now = now
        self.states: dict[str, ChannelState] = {}
        self.writes = _Writes()

    def wanted_cid(self, spec: directory_service_pb2.ChannelSpec) -> str:
        if spec.cid:
            return spec.cid
        return f"{spec.type}:{spec.id or derived_channel_id(set(self.new_members(spec)))}"

    def new_members(self, spec: directory_service_pb2.ChannelSpec) -> dict[str, dict[str, Any]]:
        """Members of a channel created for `spec`, by user id (spec entries set role and custom)."""
        members = {spec.receiver_id: self._member(spec.receiver_id)}
        for m in spec.members:
            members[m.user_id] = self._member(m.user_id, m.channel_role, struct_to_dict(m.custom))
        if self.request.sender_mode != common_pb2.SENDER_MODE_EXCLUDE and self.sender not in members:
            visibility = self.request.sender_visibility
            members[self.sender] = self._member(
                self.sender, hidden=visibility == common_pb2.SENDER_VISIBILITY_HIDDEN,
                archived_at=self.now if visibility == common_pb2.SENDER_VISIBILITY_ARCHIVED else None)
        return members

    def _member(self, user_id: str, role: str = "", custom: dict | None = None, *, hidden: bool = False,
                archived_at: dt.datetime | None = None) -> dict[str, Any]:
        return {"user_id": user_id, "channel_role": role or MEMBER_ROLE, "hidden": hidden,
                "archived_at": archived_at, "custom": custom or {}, "created_at": self.now}

    def resolve(self, spec: directory_service_pb2.ChannelSpec, cid: str) -> Outcome:
        state = self.states.get(cid)
        if state is None:
            if spec.cid or not self.request.create_channels:
                return Outcome(spec.recipient_id, skip_reason=CHANNEL_NOT_FOUND)
            return Outcome(spec.recipient_id, cid, True, channel=self._create(spec, cid))
        self._join_existing(spec, cid, state)
        return Outcome(spec.recipient_id, cid, False, channel=state)

    def _create(self, spec: directory_service_pb2.ChannelSpec, cid: str) -> ChannelState:
        kind, _, ident = cid.partition(":")
        row = {"cid": cid, "type": kind, "id": ident, "team": spec.team, "custom": struct_to_dict(spec.custom),
               "created_by_id": self.sender, "created_at": self.now, "updated_at": self.now}
        members = self.new_members(spec)
        self.writes.channels.append(row)
        self.writes.members.extend({"cid": cid, **m} for m in members.values())
        state = ChannelState(row, members, created_now=True)
        self.states[cid] = state
        return state

    def _join_existing(self, spec: directory_service_pb2.ChannelSpec, cid: str, state: ChannelState) -> None:
        if self.request.sender_mode == common_pb2.SENDER_MODE_INCLUDE and self.sender not in state.members:
            member = self._member(self.sender)
            state.members[self.sender] = member
            self.writes.members.append({"cid": cid, **member})
            state.changed = True
        if self.request.show_channels:
            # A user target's receiver; for a channel target, everyone it reaches.
            receivers = [spec.receiver_id] if spec.receiver_id else [u for u in state.members if u != self.sender]
            for user_id in receivers:
                member = state.members.get(user_id)
                if member is not None and member["hidden"]:
                    state.members[user_id] = {**member, "hidden": False}
                    self.writes.unhide.append((cid, user_id))
                    state.changed = True


@dataclass
class Ensured:
    outcomes: list[Outcome]  # in request order
    channels_changed: bool  # channels or memberships were written: channel segment sizes may differ


async def ensure_channels(session: AsyncSession, request: directory_service_pb2.EnsureChannelsRequest) -> Ensured:
    """Outcomes in request order (the request is already validated)."""
    batch = _Batch(request, utcnow())
    specs = list(request.channels)
    stored = await store.ensured_outcomes(session, request.campaign_id, [s.recipient_id for s in specs])
    wanted = {s.recipient_id: batch.wanted_cid(s) for s in specs if s.recipient_id not in stored}
    cids = set(wanted.values()) | {row.cid for row in stored.values() if row.cid}
    await _load(session, batch, cids)

    outcomes = []
    for spec in specs:
        previous = stored.get(spec.recipient_id)
        if previous is not None:
            outcomes.append(Outcome(spec.recipient_id, previous.cid, previous.created, previous.skip_reason,
                                    batch.states.get(previous.cid)))
        else:
            outcomes.append(batch.resolve(spec, wanted[spec.recipient_id]))
    if request.dry_run:
        return Ensured(outcomes, channels_changed=False)
    changed = await _write(session, batch, [o for o in outcomes if o.recipient_id not in stored],
                           request.campaign_id)
    return Ensured(outcomes, changed)


async def _load(session: AsyncSession, batch: _Batch, cids: set[str]) -> None:
    rows = await store.channels_by_cids(session, cids)
    members = await store.members_of(session, rows)
    for cid, row in rows.items():
        batch.states[cid] = ChannelState(dict(row._mapping), {m.user_id: dict(m._mapping) for m in members[cid]})


async def _write(session: AsyncSession, batch: _Batch, fresh: list[Outcome], campaign_id: str) -> bool:
    """Writes the batch's changes; True when channels or memberships changed."""
    writes = batch.writes
    if await store.insert_channels(session, writes.channels) != len(writes.channels):
        # Another campaign created one of these channels since we looked; the retry will find it.
        raise Unavailable("a channel was created concurrently; retry the batch",
                          reason=reasons.CHANNEL_CREATED_CONCURRENTLY)
    await store.add_members(session, writes.members)
    await store.unhide_members(session, writes.unhide)
    touched = [cid for cid, s in batch.states.items() if s.changed and not s.created_now]
    await store.touch_channels(session, touched, batch.now)
    await store.record_outcomes(session, [
        {"campaign_id": campaign_id, "recipient_id": o.recipient_id, "cid": o.cid, "created": o.created,
         "skip_reason": o.skip_reason, "created_at": batch.now} for o in fresh])
    # New channels, new members (`members` filters) and touched ones (`updated_at` filters) can
    # all change what a channel segment's filter matches.
    changed = bool(writes.channels or writes.members or touched)
    if changed:
        await store.mark_sizes_dirty(session, "channel")
    return changed
