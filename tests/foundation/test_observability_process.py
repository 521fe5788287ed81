"""A service process as `herald serve` runs it: metrics on the address HERALD_<SERVICE>_METRICS_ADDR
names, traces where the standard OTEL_* variables send them, a metrics address that is taken
stops the start with the variable named, and the variables are read as documented."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness import DEADLINE_S, TEST_SECRET, client_channel, eventually
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, directory_service_pb2_grpc
from services.kit.probes import free_port, wait_serving
from services.kit.server import EXIT_CANNOT_START
from services.kit.tracing import tracing_requested

UPSERT_USERS = "/herald.segment.v1.DirectoryService/UpsertUsers"


def segment_env(tmp_path, port: int, **variables: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    return dict(env, HERALD_SEGMENT_ADDR=f"127.0.0.1:{port}", HERALD_API_SECRET=TEST_SECRET,
                HERALD_DATA_DIR=str(tmp_path), HERALD_SHUTDOWN_GRACE_S="1", **variables)


async def test_a_service_process_serves_metrics_and_exports_traces_as_configured(tmp_path):
    port, metrics_port = free_port(), free_port()
    env = segment_env(tmp_path, port, HERALD_SEGMENT_METRICS_ADDR=f"127.0.0.1:{metrics_port}",
                      OTEL_TRACES_EXPORTER="console")
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.segment_svc", env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await wait_serving(port, timeout_s=DEADLINE_S, alive=lambda: process.returncode is None)
        async with client_channel(port) as channel:
            directory = directory_service_pb2_grpc.DirectoryServiceStub(channel)
            await directory.UpsertUsers(ds.UpsertUsersRequest(users=[directory_pb2.User(id="ann", name="Ann")]))

        async def upserts() -> float:
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)).text
            return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                       if s.name == "grpc_server_handled_total" and s.labels["grpc_method"] == "UpsertUsers"
                       and s.labels["grpc_code"] == "OK")

        await eventually(upserts, lambda n: n == 1, what="UpsertUsers counted on /metrics")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    assert process.returncode == 0, stderr.decode()[-2000:]
    # The console exporter prints each span as a JSON object, sent at the latest on shutdown.
    spans = [json.loads(chunk) for chunk in _json_objects(stdout.decode())]
    [upsert] = [span for span in spans if span["name"] == UPSERT_USERS]
    assert upsert["kind"] == "SpanKind.SERVER"
    assert upsert["resource"]["attributes"]["service.name"] == "herald-segment"
    assert not [span for span in spans if "grpc.health" in span["name"]]  # health checks are not traced


def _json_objects(text: str) -> list[str]:
    """The top-level JSON objects printed one after another (each spans several lines)."""
    objects, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "{":
            depth, start = depth + 1, (i if depth == 0 else start)
        elif char == "}":
            depth -= 1
            if depth == 0:
                objects.append(text[start:i + 1])
    return objects


async def test_a_taken_metrics_address_stops_the_start_naming_the_variable(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        env = segment_env(tmp_path, free_port(), HERALD_SEGMENT_METRICS_ADDR=f"127.0.0.1:{taken}")
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.segment_svc", env=env,
                                                       stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    assert process.returncode == EXIT_CANNOT_START, stderr.decode()
    assert f"cannot serve metrics on 127.0.0.1:{taken}" in stderr.decode()
    assert "HERALD_SEGMENT_METRICS_ADDR=off" in stderr.decode()


def test_traces_are_off_unless_an_otel_variable_asks_for_them():
    assert not tracing_requested({})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317"})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://localhost:4318/v1/traces"})
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing_requested({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"})
    assert not tracing_requested({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"})
