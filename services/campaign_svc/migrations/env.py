"""Alembic's entry point for the campaign service's schema history (see services.kit.migrate)."""

from services.campaign_svc.migrations import SCHEMA
from services.kit.migrate import run_env

run_env(SCHEMA)
