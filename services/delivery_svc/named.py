"""Recipients a caller names — a preview's one, a test send's few — run through the sending code.

They are made into the batch StreamRecipients would hand over (an unknown user among its
`skipped_ids`), addressed by `Addressing`, their channels found or created by EnsureChannels
(with `dry_run` for a preview: the segment service's own rules, nothing written) and composed by
`Composer`: the very path a delivery takes, on a batch of a few. So what a preview shows and what
a test send writes are what sending writes, and there is no second renderer to drift from it.
Nothing is written here; a test send writes what comes back (testsend.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from herald.campaign.v1 import campaign_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2, segment_pb2, segment_service_pb2
from services.delivery_svc.addressing import Addressing
from services.delivery_svc.compose import Composer
from services.delivery_svc.deliveries import check_snapshot
from services.delivery_svc.outcomes import Outcome
from services.delivery_svc.render import sender_to_dict
from services.delivery_svc.upstream import SegmentClient
from services.kit.bulk import DriverValues
from services.kit.templates import user_variables


@dataclass(slots=True)
class Composed:
    """One named recipient as composed for the write, with its channel as EnsureChannels
    answered (None when it was not addressed: an unknown user, a channel that did not render)."""

    outcome: Outcome
    ensured: directory_service_pb2.EnsuredChannel | None


class NamedRecipients:
    def __init__(self, segments: SegmentClient, dialect_name: str) -> None:
        self.segments = segments
        self.values = DriverValues(dialect_name)  # what Composer encodes rows with

    async def compose(self, campaign: campaign_pb2.Campaign, user_ids: Sequence[str], cids: Sequence[str], *,
                      dry_run: bool, test_send_id: str = "") -> list[Composed]:
        """Each of `user_ids` (user targets) or `cids` (channel targets), distinct, in that order,
        as a delivery of `campaign` would compose it; `test_send_id` gives the rows a test send's ids
        (and keys its EnsureChannels outcomes), see Composer."""
        templates = await asyncio.to_thread(check_snapshot, campaign)  # compiling may take a while
        users = await self.segments.get_users(list(dict.fromkeys([campaign.sender_id, *user_ids])))
        sender = user_variables(sender_to_dict(campaign, users.get(campaign.sender_id)))
        batch = _batch(user_ids, cids, users)
        addressed = await templates.off_loop(Addressing(campaign, templates, sender).address, batch)
        composed = {o.target_id: Composed(o, None) for o in addressed.outcomes}
        if addressed.specs:
            ensured = await self.segments.ensure_channels(campaign, addressed.specs, dry_run=dry_run,
                                                          scope=test_send_id)
            composer = Composer(campaign, templates, self.values, test_send_id=test_send_id)
            outcomes = await composer.compose(addressed.specs, addressed.contexts, ensured)
            composed.update((o.target_id, Composed(o, channel)) for o, channel in zip(outcomes, ensured.channels))
        return [composed[target_id] for target_id in (cids or user_ids)]


def _batch(user_ids: Sequence[str], cids: Sequence[str],
           users: dict[str, directory_pb2.User]) -> segment_service_pb2.StreamRecipientsResponse:
    """The recipients as StreamRecipients hands them over: channels by their cids (whether they
    exist, EnsureChannels says, as when sending), users with their data, unknown ones among the
    skipped ids."""
    if cids:
        return segment_service_pb2.StreamRecipientsResponse(
            recipients=[segment_pb2.Recipient(target_id=cid, channel=directory_pb2.Channel(cid=cid)) for cid in cids],
            target_type=segment_pb2.SEGMENT_TYPE_CHANNEL)
    return segment_service_pb2.StreamRecipientsResponse(
        recipients=[segment_pb2.Recipient(target_id=u, user=users[u]) for u in user_ids if u in users],
        skipped_ids=[u for u in user_ids if u not in users], target_type=segment_pb2.SEGMENT_TYPE_USER)
