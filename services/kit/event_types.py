"""The event types of the contract (DESIGN §5, §10.1), named once for every service."""

from __future__ import annotations

CHANNEL_CREATED = "channel.created"
MESSAGE_NEW = "message.new"
CAMPAIGN_STARTED = "campaign.started"
CAMPAIGN_COMPLETED = "campaign.completed"
CAMPAIGN_STOPPED = "campaign.stopped"
CAMPAIGN_PAUSED = "campaign.paused"
CAMPAIGN_RESUMED = "campaign.resumed"

# What a campaign's sending does to channels: in-app and push events; `skip_webhook` suppresses
# their webhooks, never the campaign's own events.
PER_RECIPIENT = (CHANNEL_CREATED, MESSAGE_NEW)
# Written by the campaign service through PublishEvent; webhooks only.
CAMPAIGN_EVENTS = (CAMPAIGN_STARTED, CAMPAIGN_COMPLETED, CAMPAIGN_STOPPED, CAMPAIGN_PAUSED, CAMPAIGN_RESUMED)
ALL = PER_RECIPIENT + CAMPAIGN_EVENTS
