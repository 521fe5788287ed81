"""`ErrorInfo.reason`s of delivery_svc's own cases (domain `delivery.herald`); the shared ones
are in `services.kit.reasons`, and the README lists them all."""

from __future__ import annotations

DELIVERY_NOT_FOUND = "DELIVERY_NOT_FOUND"
CAPACITY_EXHAUSTED = "CAPACITY_EXHAUSTED"
SEQUENCE_EXPIRED = "SEQUENCE_EXPIRED"
SEQUENCE_AHEAD = "SEQUENCE_AHEAD"
