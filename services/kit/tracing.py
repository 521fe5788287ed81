"""OpenTelemetry traces, off unless the standard `OTEL_*` variables ask for them, and the campaign a
piece of work is for, which logs and spans carry.

- `setup_tracing(service)` (each service's process, at start): a TracerProvider exporting with
  the exporter `OTEL_TRACES_EXPORTER` names (default `otlp`, over `OTEL_EXPORTER_OTLP_PROTOCOL`:
  `grpc`, the default, or `http/protobuf`) to `OTEL_EXPORTER_OTLP_ENDPOINT`, when that endpoint or
  an exporter is set; `OTEL_SERVICE_NAME` defaults to `herald-<service>`; the SDK reads the
  rest (`OTEL_TRACES_SAMPLER`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`, headers, timeouts).
- Context crosses services in gRPC metadata (W3C `traceparent`, and `baggage`), through
  OpenTelemetry's own aio interceptors (`services.kit.telemetry`).
- `bind_campaign(id)`: from here on in this task and the tasks it starts, log lines carry
  `campaign_id`; while tracing, the current span carries it and so do the calls made (as baggage),
  whose server side binds it in turn (`adopt_campaign`), so every span of a campaign's trace,
  in every service, carries `campaign_id`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

from services.kit.config import ConfigError
from services.kit.limits import MAX_ID

if TYPE_CHECKING:  # the SDK is imported only once tracing is asked for
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("herald.tracing")

CAMPAIGN_ID = "campaign_id"  # the span attribute, the baggage key and the log field

# The campaign the current task works for ("" when none): read by the log formatter.
current_campaign: contextvars.ContextVar[str] = contextvars.ContextVar("current_campaign", default="")

# The provider `setup_tracing` made for this process (None: tracing is off).
_process_provider: TracerProvider | None = None


def tracing_requested(env: Mapping[str, str]) -> bool:
    """Whether the OTEL_* variables ask for traces: an OTLP endpoint, or an exporter other than none."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters == "none":
        return False
    return bool(exporters or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def setup_tracing(service: str, env: Mapping[str, str] | None = None) -> TracerProvider | None:
    """The process's TracerProvider when the OTEL_* variables ask for traces, else None."""
    global _process_provider
    env = os.environ if env is None else env
    if not tracing_requested(env):
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"herald-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    names = [name.strip() for name in (env.get("OTEL_TRACES_EXPORTER") or "otlp").lower().split(",") if name.strip()]
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, env)))
    trace.set_tracer_provider(provider)
    _process_provider = provider
    log.info("tracing", extra={"exporters": names, "endpoint": env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")})
    return provider


def process_tracer_provider() -> TracerProvider | None:
    """The provider `setup_tracing` made in this process, if it did."""
    return _process_provider


def shutdown_tracing(provider: TracerProvider | None, timeout_s: float = 3.0) -> None:
    """Sends the spans still buffered and stops the provider, waiting at most `timeout_s`: a
    collector that is down must not hold up the shutdown (the exporter's retries would)."""
    if provider is None:
        return

    def flush_and_stop() -> None:
        provider.force_flush(int(timeout_s * 1000))
        provider.shutdown()

    worker = threading.Thread(target=flush_and_stop, name="tracing-shutdown", daemon=True)
    worker.start()
    worker.join(timeout_s)


def _exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise ConfigError(f"OTEL_TRACES_EXPORTER={name!r} is not supported here (otlp, console or none)")
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "grpc").strip().lower()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported (grpc or http/protobuf)")


# --- the campaign a piece of work is for --------------------------------------------------------


def bind_campaign(campaign_id: str) -> None:
    """Marks the current task (and the tasks it starts from now on) as working for the campaign:
    its log lines carry `campaign_id`; while tracing, so do the current span and the calls it
    makes (W3C baggage). Called before the request is checked: an id past the id limit is left out.
    Left bound: the task's context ends with the task (a loop that outlives one campaign uses
    `campaign_scope`)."""
    if campaign_id and len(campaign_id) <= MAX_ID:
        current_campaign.set(campaign_id)
        _tag_span(campaign_id)


@contextlib.contextmanager
def campaign_scope(campaign_id: str) -> Iterator[None]:
    """`bind_campaign` for the block only; tasks started in it keep the campaign."""
    token = current_campaign.set(campaign_id)
    attached = _tag_span(campaign_id)
    try:
        yield
    finally:
        if attached is not None:
            otel_context.detach(attached)
        current_campaign.reset(token)


def _tag_span(campaign_id: str) -> contextvars.Token[otel_context.Context] | None:
    """While tracing: the campaign on the current span and in the baggage of the calls made from
    here; returns the token of the context attached, if one was."""
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    span.set_attribute(CAMPAIGN_ID, campaign_id)
    if baggage.get_baggage(CAMPAIGN_ID) == campaign_id:
        return None
    return otel_context.attach(baggage.set_baggage(CAMPAIGN_ID, campaign_id))


def adopt_campaign() -> None:
    """On the server side of a call: binds the campaign the caller's baggage names, if any."""
    campaign_id = baggage.get_baggage(CAMPAIGN_ID)
    if isinstance(campaign_id, str) and campaign_id:
        bind_campaign(campaign_id)


def tag_client_span(span: trace.Span, request: Any) -> None:
    """The tracing client interceptors' request hook: a call made for a campaign says which."""
    campaign_id = current_campaign.get()
    if campaign_id and span.is_recording():
        span.set_attribute(CAMPAIGN_ID, campaign_id)


def log_fields() -> dict[str, str]:
    """What a log line adds of its context: `campaign_id`, and `trace_id` / `span_id` while a
    span is being recorded (hex, as trace UIs search for them)."""
    fields: dict[str, str] = {}
    campaign_id = current_campaign.get()
    if campaign_id:
        fields[CAMPAIGN_ID] = campaign_id
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        fields["trace_id"] = trace.format_trace_id(span_context.trace_id)
        fields["span_id"] = trace.format_span_id(span_context.span_id)
    return fields
