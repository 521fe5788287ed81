"""Log lines carry the campaign being handled and, while a span is recorded, its trace."""

from __future__ import annotations

import json
import logging

from opentelemetry import baggage
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_span_id, format_trace_id

from services.kit.logs import JsonFormatter
from services.kit.tracing import bind_campaign, campaign_scope, current_campaign


def line(**extra) -> dict:
    record = logging.makeLogRecord({"name": "herald.test", "levelname": "INFO", "msg": "hello", **extra})
    return json.loads(JsonFormatter().format(record))


def test_a_line_names_the_campaign_and_the_trace_it_was_written_in():
    tracer = TracerProvider().get_tracer("test")
    assert {"campaign_id", "trace_id", "span_id"}.isdisjoint(line())
    with tracer.start_as_current_span("work") as span, campaign_scope("c-1"):
        written = line()
        assert baggage.get_baggage("campaign_id") == "c-1"  # calls made from here carry it
        assert line(campaign_id="named")["campaign_id"] == "named"  # what the call says wins
    context = span.get_span_context()
    assert written["campaign_id"] == "c-1"
    assert (written["trace_id"], written["span_id"]) == (format_trace_id(context.trace_id),
                                                         format_span_id(context.span_id))
    assert span.attributes["campaign_id"] == "c-1"
    assert {"campaign_id", "trace_id"}.isdisjoint(line())  # the scope ended
    assert baggage.get_baggage("campaign_id") is None


def test_without_tracing_a_line_still_names_the_campaign_and_no_trace():
    token = current_campaign.set("")
    try:
        bind_campaign("c-2")
        assert line()["campaign_id"] == "c-2" and "trace_id" not in line()
        bind_campaign("x" * 256)  # past the id limit (an unchecked request's): left out
        assert line()["campaign_id"] == "c-2"
    finally:
        current_campaign.reset(token)
