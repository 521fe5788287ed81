"""The segment service's schema history (Alembic): env.py runs it, versions/ holds the revisions."""

from pathlib import Path

from services.kit.migrate import Schema
from services.segment_svc.store import metadata

SCHEMA = Schema(
    service="segment", metadata=metadata, script_location=Path(__file__).parent,
    lock_key=0x6865_7261_6C64_0001,  # "herald" in ASCII, then the service's number
    first_revision_tables=frozenset({"users", "channels", "channel_members", "segments", "segment_targets",
                                     "ensured_channels"}),
)
