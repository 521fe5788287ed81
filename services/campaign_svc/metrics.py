"""The campaign service's own metrics (DESIGN §10.5), in its registry (services.kit.telemetry):

    herald_scheduler_lateness_seconds   how late a scheduled campaign started: the scheduler's claim
                                        of it minus its scheduled_for (a time that passed while the
                                        service was down shows here as a large lateness)
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

# The scheduler ticks every 0.25 s: a healthy start is late by less than a second; a restart after
# an outage may be late by hours.
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class CampaignMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.scheduler_lateness = Histogram("herald_scheduler_lateness_seconds",
                                            "How late a scheduled campaign started, after its scheduled_for",
                                            buckets=LATENESS_BUCKETS, registry=registry)
