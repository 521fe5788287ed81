"""Herald's Python client: `HeraldClient` (asyncio) and `HeraldSyncClient`, configured from the
same HERALD_* variables as the services, raising `HeraldError` (services.client.errors)."""

from services.client.client import TERMINAL, HeraldClient
from services.client.errors import FieldViolation, HeraldError
from services.client.sync import HeraldSyncClient

__all__ = ["TERMINAL", "FieldViolation", "HeraldClient", "HeraldError", "HeraldSyncClient"]
