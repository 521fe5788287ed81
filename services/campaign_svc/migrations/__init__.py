"""The campaign service's schema history (Alembic): env.py runs it, versions/ holds the revisions."""

from pathlib import Path

from services.campaign_svc.store import metadata
from services.kit.migrate import Schema

SCHEMA = Schema(
    service="campaign", metadata=metadata, script_location=Path(__file__).parent,
    lock_key=0x6865_7261_6C64_0002,  # "herald" in ASCII, then the service's number
    first_revision_tables=frozenset({"campaigns", "campaign_segments", "retired_campaign_ids", "campaign_users",
                                     "campaign_events"}),
)
