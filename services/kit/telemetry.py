"""A service's telemetry: its Prometheus registry and its tracer, made once per service by its
composition root and handed to what it measures.

One registry per service, not prometheus_client's global one: `herald serve` runs each service
in its own process, where either would do, but tests run several services in one process (and
restart them), and there a global registry would sum the counters of every service the process
ever ran (a `service` label would not separate two segment services of two tests) and refuse a
metric registered twice. With a registry per service, what a service serves is its own, as in
production, and a restarted service starts from zero, as a restarted process does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
from opentelemetry import trace
from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry

from services.kit.config import Settings
from services.kit.rpc_metrics import RpcMetrics, ServerMetricsInterceptor, client_metrics_interceptors
from services.kit.tracing import process_tracer_provider, tag_client_span

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

# Not traced: health checks and reflection are noise in a trace, and the health service's Watch
# writes with context.write, which OpenTelemetry's aio server interceptor does not support.
UNTRACED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


def _traced(details: grpc.HandlerCallDetails) -> bool:
    return not details.method.startswith(UNTRACED_PREFIXES)


class Telemetry:
    """`registry` None: metrics off; `tracer_provider` None: tracing off (then `tracer` makes
    spans that record nothing, at the cost of a function call)."""

    def __init__(self, service: str, *, registry: CollectorRegistry | None = None,
                 tracer_provider: TracerProvider | None = None) -> None:
        self.service = service
        self.registry = registry
        self.tracer_provider = tracer_provider
        self.tracer: trace.Tracer = tracer_provider.get_tracer("herald") if tracer_provider is not None \
            else trace.NoOpTracer()
        self._server_rpc = RpcMetrics(registry, "server") if registry is not None else None
        self._client_rpc = RpcMetrics(registry, "client") if registry is not None else None

    @classmethod
    def for_service(cls, service: str, settings: Settings, *,
                    tracer_provider: TracerProvider | None = None) -> Telemetry:
        """Metrics unless `HERALD_<SERVICE>_METRICS_ADDR` is off; traces to `tracer_provider`, else
        to the process's (set up from OTEL_* by `run_service`), else none."""
        registry = None
        if settings.metrics_addr(service) is not None:
            registry = CollectorRegistry()
            # prometheus_client's standard process_* (CPU, memory, open fds) and python_* (GC,
            # version) metrics, read at scrape time; the collectors are stateless, so shared.
            for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                registry.register(standard)
        return cls(service, registry=registry, tracer_provider=tracer_provider or process_tracer_provider())

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """Outermost first: the server span covers the whole call, the metrics see the status the
        Herald interceptor (inside them) answers."""
        interceptors: list[grpc.aio.ServerInterceptor] = []
        if self.tracer_provider is not None:
            from opentelemetry.instrumentation.grpc import aio_server_interceptor

            interceptors.append(aio_server_interceptor(tracer_provider=self.tracer_provider, filter_=_traced))
        if self._server_rpc is not None:
            interceptors.append(ServerMetricsInterceptor(self._server_rpc))
        return interceptors

    def client_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """For the channels the service opens to the others, outermost first: the client span
        (which injects the trace context into the call's metadata), then the metrics."""
        interceptors: list[grpc.aio.ClientInterceptor] = []
        if self.tracer_provider is not None:
            from opentelemetry.instrumentation.grpc import aio_client_interceptors

            interceptors += aio_client_interceptors(tracer_provider=self.tracer_provider, request_hook=tag_client_span)
        if self._client_rpc is not None:
            interceptors += client_metrics_interceptors(self._client_rpc)
        return interceptors
