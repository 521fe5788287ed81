"""OpenTelemetry traces across the three real services (DESIGN §10.5): a campaign start is one
trace from StartCampaign through StartDelivery to StreamRecipients and EnsureChannels, its
batch writes are spans of it, every span of it carries `campaign_id`, and a log line written
while handling the campaign names the campaign and leads to its trace.

The services run in this process and share one TracerProvider, exporting to OpenTelemetry's
in-memory exporter; the context still crosses every service boundary as gRPC metadata.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from google.protobuf import timestamp_pb2
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_trace_id

from harness import eventually, serve_system
from herald.campaign.v1 import campaign_pb2, campaign_service_pb2 as cs, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, directory_service_pb2_grpc
from services.kit.logs import JsonFormatter

COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED
START_CAMPAIGN = "/herald.campaign.v1.CampaignService/StartCampaign"
START_DELIVERY = "/herald.delivery.v1.DeliveryService/StartDelivery"
STREAM_RECIPIENTS = "/herald.segment.v1.SegmentService/StreamRecipients"
ENSURE_CHANNELS = "/herald.segment.v1.DirectoryService/EnsureChannels"
WRITE_BATCH = "delivery.write_batch"
SCHEDULED_START = "campaign.scheduled_start"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


class Lines(logging.Handler):
    """The services' log lines, as JSON objects, formatted as a service process formats them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_lines():
    handler = Lines()
    logger = logging.getLogger("herald")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


async def create(system, campaign_id: str, **fields) -> cs.CampaignServiceStub:
    directory = directory_service_pb2_grpc.DirectoryServiceStub(system.channel("segment"))
    campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))
    await directory.UpsertUsers(ds.UpsertUsersRequest(users=[
        directory_pb2.User(id=i, name=i.title()) for i in ("boss", "ann", "bob", "cat")]))
    await campaigns.CreateCampaign(cs.CreateCampaignRequest(
        id=campaign_id, sender_id="boss", user_ids=["ann", "bob", "cat"],
        message_template=common_pb2.MessageTemplate(text="Hi {{ receiver.name }}"),
        channel_template=common_pb2.ChannelTemplate(type="messaging"), create_channels=True, **fields))
    return campaigns


async def completed(campaigns, campaign_id: str) -> None:
    async def status() -> int:
        return (await campaigns.GetCampaign(cs.GetCampaignRequest(id=campaign_id))).campaign.status

    await eventually(status, lambda s: s == COMPLETED, what="the campaign completed", interval_s=0.1)


def trace_of(exporter: InMemorySpanExporter, root: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == root.context.trace_id]


def named(spans: list[ReadableSpan], name: str, kind: SpanKind | None = None) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name and (kind is None or s.kind == kind)]


async def test_a_campaign_start_is_one_trace_across_the_three_services(new_db_url, tmp_path, spans):
    provider, exporter = spans
    async with serve_system(new_db_url, tmp_path, tracer_provider=provider, delivery_batch_size=2) as system:
        campaigns = await create(system, "traced")
        await campaigns.StartCampaign(cs.StartCampaignRequest(id="traced"))
        await completed(campaigns, "traced")

        [start] = named(exporter.get_finished_spans(), START_CAMPAIGN, SpanKind.SERVER)
        assert start.parent is None or start.parent.is_remote  # the caller's (a test channel: untraced)

        def the_trace() -> list[ReadableSpan]:
            return trace_of(exporter, start)

        # 3 recipients, 2 a batch: two batches, each with its EnsureChannels, all in the start's trace.
        spans_of_start = await eventually(
            the_trace, lambda found: len(named(found, WRITE_BATCH)) == 2
            and len(named(found, ENSURE_CHANNELS, SpanKind.SERVER)) == 2
            and named(found, STREAM_RECIPIENTS, SpanKind.SERVER),
            what="the batches of the campaign in the start's trace")
        [delivery_start] = named(spans_of_start, START_DELIVERY, SpanKind.SERVER)
        [delivery_call] = named(spans_of_start, START_DELIVERY, SpanKind.CLIENT)
        assert delivery_call.parent.span_id == start.context.span_id  # campaign_svc called it for StartCampaign
        assert delivery_start.parent.span_id == delivery_call.context.span_id  # through gRPC metadata
        services = {s.resource.attributes.get("service.name") for s in spans_of_start}  # one provider here
        assert len(services) == 1
        # The server spans of the three services, each a child of its caller's client span.
        by_id = {s.context.span_id: s for s in spans_of_start}
        for name in (STREAM_RECIPIENTS, ENSURE_CHANNELS):
            for server in named(spans_of_start, name, SpanKind.SERVER):
                caller = by_id[server.parent.span_id]
                assert (caller.name, caller.kind) == (name, SpanKind.CLIENT)

        for batch in named(spans_of_start, WRITE_BATCH):
            assert batch.attributes["campaign_id"] == "traced"
            assert batch.attributes["herald.batch.size"] in (1, 2)
        assert sum(b.attributes["herald.batch.written"] for b in named(spans_of_start, WRITE_BATCH)) == 3
        unlabelled = [(s.name, s.kind.name) for s in spans_of_start if s.attributes.get("campaign_id") != "traced"]
        assert unlabelled == []


async def test_a_scheduled_start_is_a_trace_its_log_line_leads_to(new_db_url, tmp_path, spans, log_lines):
    provider, exporter = spans
    async with serve_system(new_db_url, tmp_path, tracer_provider=provider) as system:
        campaigns = await create(system, "later")
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1))
        await campaigns.StartCampaign(cs.StartCampaignRequest(id="later", scheduled_for=when))
        await completed(campaigns, "later")

        [scheduled] = named(exporter.get_finished_spans(), SCHEDULED_START)
        assert scheduled.parent is None and scheduled.attributes["campaign_id"] == "later"
        spans_of_start = await eventually(
            lambda: trace_of(exporter, scheduled), lambda found: named(found, WRITE_BATCH)
            and named(found, START_DELIVERY, SpanKind.SERVER),
            what="the scheduled start's delivery in its trace")
        assert all(s.attributes.get("campaign_id") == "later" for s in spans_of_start)

        [line] = [line for line in log_lines if line["msg"] == "scheduled campaign starts"]
        assert line["campaign_id"] == "later"
        assert line["trace_id"] == format_trace_id(scheduled.context.trace_id)
