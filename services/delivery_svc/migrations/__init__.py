"""The delivery service's schema history (Alembic): env.py runs it, versions/ holds the revisions."""

from pathlib import Path

from services.delivery_svc.store import metadata
from services.kit.migrate import Schema

SCHEMA = Schema(
    service="delivery", metadata=metadata, script_location=Path(__file__).parent,
    lock_key=0x6865_7261_6C64_0003,  # "herald" in ASCII, then the service's number
    first_revision_tables=frozenset({"deliveries", "messages", "recipient_log", "reads", "events",
                                     "monthly_usage"}),
)
