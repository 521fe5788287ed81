"""`ErrorInfo.reason`s of segment_svc's own cases (domain `segment.herald`); the shared ones
are in `services.kit.reasons`, and the README lists them all."""

from __future__ import annotations

SEGMENT_NOT_FOUND = "SEGMENT_NOT_FOUND"
SEGMENT_ALREADY_EXISTS = "SEGMENT_ALREADY_EXISTS"
SEGMENT_NOT_MANUAL = "SEGMENT_NOT_MANUAL"
SEGMENT_WITHOUT_FILTER = "SEGMENT_WITHOUT_FILTER"
SEGMENT_TYPE_MISMATCH = "SEGMENT_TYPE_MISMATCH"
CHANNEL_CREATED_CONCURRENTLY = "CHANNEL_CREATED_CONCURRENTLY"
