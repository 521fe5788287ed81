"""Every contract limit of Herald, in one place (DESIGN §4–7, §10.3; the protos' comments say the
same numbers to callers). Each check imports its limit from here; a limit that follows from
another is derived or asserted below, never written twice. Internal tuning knobs (timeouts,
backoffs, batches in flight) stay with the code they tune.
"""

from __future__ import annotations

from typing import NamedTuple


class PageLimit(NamedTuple):
    """A page size: `default` when a request gives 0, at most `max`."""
    default: int
    max: int


# --- strings -------------------------------------------------------------------------------------
MAX_ID = 255  # characters of any id: users, channels, segments, campaigns, polls, cursors' targets
MAX_CHANNEL_TYPE = 64  # characters of a channel type (no ':' in it)
MAX_CID = MAX_CHANNEL_TYPE + 1 + MAX_ID  # a cid is "type:id"
MAX_TEAM = 1000  # characters of a channel's team
MAX_SEGMENT_NAME = 128  # characters of a segment's name
MAX_SEGMENT_DESCRIPTION = 256  # characters of a segment's description
MAX_TEXT_CHARS = 5000  # characters of a rendered message text; longer fails the recipient (text_too_long)
MAX_REASON_CHARS = 64  # characters of a recipient's reason in the recipient log
MAX_STOP_MESSAGE = 1000  # characters of a delivery's stop message (longer ones are cut)
MAX_PREVIEW_DETAIL = 1000  # characters of a preview's render failure detail (longer ones are cut)
MAX_TEMPLATE_SOURCE = 20_000  # characters of one templated string (text, a custom or attachment value, an id)

# --- one recipient's render (DESIGN §10.3; past any of these the recipient fails, render_error) -------
MAX_RENDER_OPERATIONS = 100_000  # loop iterations and calls (and work on big values, see kit/templates)
MAX_RENDER_VALUE = 64 * 1024  # characters (or items) of any string or list a render builds or handles
MAX_RENDERED_CUSTOM = 64 * 1024  # characters the templated strings of one custom (or attachments) render to

# --- lists in one call ---------------------------------------------------------------------------
MAX_USERS_PER_CALL = 10_000  # users upserted, or ids asked for, in one directory call
MAX_CHANNELS_PER_CALL = 1000  # channels upserted in one UpsertChannels call
MAX_TARGETS_PER_CALL = 10_000  # target ids added to or removed from a segment in one call
MAX_SEGMENTS_PER_AUDIENCE = 25  # segments of one campaign / one audience
MAX_AUDIENCE_USERS = MAX_USERS_PER_CALL  # user_ids of one campaign / one audience
MAX_ATTACHMENTS = 30  # attachments of a message template
MAX_MEMBERS = 1000  # members (or members_template) of a channel template and of a channel spec
MAX_DELIVERIES_PER_CALL = 100  # campaign ids of one BatchGetDeliveries
MAX_TEST_RECIPIENTS = 10  # user ids, or cids, one SendTestCampaign sends to

# --- devices and push ----------------------------------------------------------------------------
MAX_DEVICES_PER_CALL = 1000  # devices of one UpsertDevices call
MAX_DEVICE_USERS = 1000  # user ids of one ListDevices call
MAX_DEVICE_IDS = 1000  # device ids of one DeleteDevices call
MAX_DEVICES_PER_USER = 25  # devices a user keeps; the least recently upserted beyond it are removed
MAX_ENDPOINT = 2048  # characters of a push endpoint URL
NOTIFICATION_BODY_CHARS = 200  # characters of the message text a push notification shows
MAX_REPLAY_IDS = 1000  # dead letter ids of one ReplayDeadLetters call
MAX_SUBSCRIBED_USERS = 1000  # user_ids of one SubscribeEvents call

# --- streaming and ensuring channels -------------------------------------------------------------
DEFAULT_RECIPIENT_BATCH = 1000  # StreamRecipients batch_size 0; the delivery engine's default batch
MAX_RECIPIENT_BATCH = 10_000  # StreamRecipients batch_size, and so the delivery engine's batch
MAX_AUDIENCE_PARTS = 1_000  # SplitRecipients parts: ranges of an audience delivery replicas share
MAX_ENSURE_SPECS = 10_000  # channel specs of one EnsureChannels call
# The engine sends one EnsureChannels call per streamed batch.
assert MAX_ENSURE_SPECS >= MAX_RECIPIENT_BATCH, "an engine batch must fit one EnsureChannels call"

# --- pages ---------------------------------------------------------------------------------------
USERS_PAGE = PageLimit(100, 1000)  # QueryUsers
CHANNELS_PAGE = PageLimit(100, 1000)  # QueryChannels
SEGMENTS_PAGE = PageLimit(25, 100)  # QuerySegments
TARGETS_PAGE = PageLimit(1000, 10_000)  # QuerySegmentTargets
CAMPAIGNS_PAGE = PageLimit(25, 100)  # QueryCampaigns
CAMPAIGN_USERS_PAGE = PageLimit(100, 1000)  # the users of one campaign in GetCampaign
QUERY_CAMPAIGN_USERS = PageLimit(0, CAMPAIGN_USERS_PAGE.max)  # QueryCampaigns user_limit (0 = none)
MESSAGES_PAGE = PageLimit(100, 1000)  # QueryMessages
RECIPIENTS_PAGE = PageLimit(1000, 10_000)  # QueryRecipients
DEAD_LETTERS_PAGE = PageLimit(100, 1000)  # QueryDeadLetters

# --- watching (WatchCampaign, WatchDelivery) ----------------------------------------------------
WATCH_MIN_INTERVAL_S = 0.25  # at most four updates a second
WATCH_MAX_INTERVAL_S = 1.0  # at least one a second while sending

# --- filters (DESIGN §10.3) -----------------------------------------------------------------------
MAX_FILTER_BYTES = 4 * 2**20  # a filter's Struct, serialized
MAX_FILTER_DEPTH = 10  # levels of $and / $or nested in one filter
MAX_FILTER_CLAUSES = 100  # filters in one $and / $or list, and entries in one filter object
MAX_FILTER_IN_VALUES = 10_000  # values of one $in / $nin (bound as one SQL parameter)
MAX_FILTER_PARAMETERS = 1200  # SQL parameters one filter binds; 25 segments' filters share a statement
# SQLite allows 32,766 parameters a statement (asyncpg 32,767): an audience's filters, and the rest, fit.
assert MAX_FILTER_PARAMETERS * MAX_SEGMENTS_PER_AUDIENCE + 1000 <= 32_766, "an audience's filters must fit one statement"

# --- values inside requests (DESIGN §10.3) ------------------------------------------------------
MIN_TIMESTAMP_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z, the earliest timestamp a request may give
MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z, the latest

# --- messages on the wire ------------------------------------------------------------------------
MAX_MESSAGE_BYTES = 16 * 2**20  # a gRPC message, sent or received, between Herald's services
# What a client-streaming call still reads from the client after a bad request, before its error
# (services.kit.interceptors._drain); past it, the call is answered at once.
MAX_DRAINED_BYTES = 64 * 2**20
