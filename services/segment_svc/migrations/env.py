"""Alembic's entry point for the segment service's schema history (see services.kit.migrate)."""

from services.kit.migrate import run_env
from services.segment_svc.migrations import SCHEMA

run_env(SCHEMA)
