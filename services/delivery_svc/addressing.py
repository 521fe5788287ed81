"""Addressing a streamed batch: the outcome of each recipient the segment service could not
find (skipped), and for every other one the channel to ensure and the context its message
will render with. A channel target asks for its channel as it is; a user target for the channel
its template renders, and one whose channel fails to render, or renders into a spec
EnsureChannels would refuse, fails alone instead of failing the batch's call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from herald.campaign.v1 import campaign_pb2
from herald.segment.v1 import directory_service_pb2, segment_pb2, segment_service_pb2
from services.delivery_svc.outcomes import CHANNEL_NOT_FOUND, FAILED, SKIPPED, USER_NOT_FOUND, Outcome
from services.delivery_svc.render import CampaignTemplates, RecipientFailed, user_to_dict
from services.kit.templates import user_variables

# The variables a recipient's templates render with: sender, receiver (user targets), channel.
Context = dict[str, Any]


@dataclass(slots=True)
class AddressedRecipients:
    outcomes: list[Outcome]  # known at once: skipped, or failed to address
    specs: list[directory_service_pb2.ChannelSpec]  # the batch's EnsureChannels request
    contexts: list[Context]  # one per spec


class Addressing:
    """Addresses the batches of one campaign's delivery."""

    def __init__(self, campaign: campaign_pb2.Campaign, templates: CampaignTemplates,
                 sender: dict[str, Any]) -> None:
        self.templates = templates
        self.sender = sender
        # Users or channels: said by the segment service with each batch; guessed never.
        self.target_kind = "user" if campaign.user_ids else ""

    def address(self, response: segment_service_pb2.StreamRecipientsResponse) -> AddressedRecipients:
        not_found = CHANNEL_NOT_FOUND if self._kind_of(response) == "channel" else USER_NOT_FOUND
        outcomes = [Outcome(target_id, SKIPPED, not_found) for target_id in response.skipped_ids]
        specs: list[directory_service_pb2.ChannelSpec] = []
        contexts: list[Context] = []
        templates = self.templates
        sender_context: Context = {"sender": self.sender}
        for recipient in response.recipients:
            if recipient.WhichOneof("target") == "channel":
                cid = recipient.channel.cid or recipient.target_id
                specs.append(directory_service_pb2.ChannelSpec(recipient_id=recipient.target_id, cid=cid))
                contexts.append(sender_context)
                continue
            context = sender_context
            if templates.needs_receiver:
                context = {"sender": self.sender, "receiver": user_variables(user_to_dict(recipient.user))}
            try:
                specs.append(templates.user_channel_spec(recipient.target_id, context))
            except RecipientFailed as failure:
                outcomes.append(Outcome(recipient.target_id, FAILED, failure.reason, detail=str(failure)))
                continue
            contexts.append(context)
        return AddressedRecipients(outcomes, specs, contexts)

    def _kind_of(self, response: segment_service_pb2.StreamRecipientsResponse) -> str:
        """Whether the batch's targets are users or channels, as the segment service says; a
        segment service that does not say yet: user_ids audiences are users, and otherwise the
        recipients streamed so far tell (their target oneof)."""
        if response.target_type == segment_pb2.SEGMENT_TYPE_CHANNEL:
            self.target_kind = "channel"
        elif response.target_type == segment_pb2.SEGMENT_TYPE_USER:
            self.target_kind = "user"
        elif not self.target_kind and response.recipients:
            self.target_kind = "channel" if response.recipients[0].WhichOneof("target") == "channel" else "user"
        return self.target_kind or "user"
