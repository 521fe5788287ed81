"""The delivery service's own metrics (DESIGN §10.5), in its registry (services.kit.telemetry):

    herald_delivery_recipients_total{outcome}        sent / skipped / failed, once their batch committed
    herald_delivery_batch_write_seconds              one batch's transaction, from its start to its commit
    herald_outbox_backlog_events{destination}        events a destination has yet to pass (read at scrape time)
    herald_dispatch_attempts_total{destination, outcome}   webhook POSTs and pushes: delivered, retry, gone, rejected
    herald_dead_letters_total{destination}           events dead-lettered, once their dead letter committed

Counted per batch and per attempt, never per recipient; every label is bound once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.delivery_svc.destinations import Result

if TYPE_CHECKING:
    _Child = Counter

# A batch's transaction: milliseconds on SQLite, more on a busy PostgreSQL.
BATCH_WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BACKLOG = "herald_outbox_backlog_events"
BACKLOG_HELP = "Events of the outbox a destination has yet to pass (positions behind the log's head)"


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        recipients = Counter("herald_delivery_recipients_total",
                             "Recipients handled by the delivery writer, by outcome, once their batch committed",
                             ["outcome"], registry=registry)
        self._sent, self._skipped, self._failed = (recipients.labels(o) for o in ("sent", "skipped", "failed"))
        self._batch_write = Histogram("herald_delivery_batch_write_seconds",
                                      "Time a batch's transaction took, from its start to its commit",
                                      buckets=BATCH_WRITE_BUCKETS, registry=registry)
        self._attempts = Counter("herald_dispatch_attempts_total",
                                 "Attempts at delivering an event (webhook POSTs, pushes to a device), by outcome",
                                 ["destination", "outcome"], registry=registry)
        self._dead_letters = Counter("herald_dead_letters_total", "Events dead-lettered, once the dead letter committed",
                                     ["destination"], registry=registry)

    def batch_written(self, sent: int, skipped: int, failed: int, seconds: float) -> None:
        """A batch's transaction committed: its recipients' outcomes and how long it took."""
        if sent:
            self._sent.inc(sent)
        if skipped:
            self._skipped.inc(skipped)
        if failed:
            self._failed.inc(failed)
        self._batch_write.observe(seconds)

    def attempts(self, destination: str) -> dict[Result, _Child]:
        """The attempt counters of a destination, one per outcome."""
        return {result: self._attempts.labels(destination, result.value) for result in Result}

    def dead_letters(self, destination: str) -> _Child:
        return self._dead_letters.labels(destination)

    def watch_backlog(self, backlog: Callable[[], Mapping[str, int]]) -> None:
        """Serves herald_outbox_backlog_events from `backlog()`, read at each scrape: the
        dispatcher knows each destination's position and the log's head, so it costs no query."""
        self._registry.register(_Backlog(backlog))


class _Backlog(Collector):
    def __init__(self, backlog: Callable[[], Mapping[str, int]]) -> None:
        self._backlog = backlog

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(BACKLOG, BACKLOG_HELP, labels=["destination"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(BACKLOG, BACKLOG_HELP, labels=["destination"])
        for destination, events in sorted(self._backlog().items()):
            family.add_metric([destination], events)
        yield family
