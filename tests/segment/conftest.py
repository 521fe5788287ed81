"""Fixtures of the segment service tests: one server per test on port 0, its own database,
and stubs over a real channel."""

from __future__ import annotations

from dataclasses import dataclass, replace

import grpc
import pytest

from harness import client_channel, error_reason, serving, test_settings, violations
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, directory_service_pb2_grpc
from herald.segment.v1 import segment_service_pb2 as ss, segment_service_pb2_grpc
from services.segment_svc.app import SegmentApp
from services.kit.db import make_engine


@dataclass
class SegmentClient:
    directory: directory_service_pb2_grpc.DirectoryServiceStub
    segments: segment_service_pb2_grpc.SegmentServiceStub
    app: SegmentApp

    async def users(self, *users: directory_pb2.User | str, **common) -> None:
        items = [u if isinstance(u, directory_pb2.User) else directory_pb2.User(id=u, **common) for u in users]
        await self.directory.UpsertUsers(ds.UpsertUsersRequest(users=items))

    async def segment(self, **fields) -> str:
        fields.setdefault("type", 1)
        return (await self.segments.CreateSegment(ss.CreateSegmentRequest(**fields))).segment.id

    async def stream(self, **request) -> list[ss.StreamRecipientsResponse]:
        return [batch async for batch in self.segments.StreamRecipients(ss.StreamRecipientsRequest(**request))]


@pytest.fixture
async def svc(new_db_url, tmp_path):
    url = await new_db_url("segment")
    settings = replace(test_settings(tmp_path), segment_db_url=url)
    app = SegmentApp(settings, make_engine(url), size_debounce_s=0.05, size_rest_s=0.05)
    async with serving(app, settings) as running:
        channel = client_channel(running.port)
        try:
            yield SegmentClient(directory_service_pb2_grpc.DirectoryServiceStub(channel),
                                segment_service_pb2_grpc.SegmentServiceStub(channel), app)
        finally:
            await channel.close()




async def expect_error(call, code: grpc.StatusCode, field: str | None = None, *,
                       reason: str | None = None) -> grpc.aio.AioRpcError:
    """Awaits `call` (a coroutine, or an async iterator to drain) expecting `code`, for
    INVALID_ARGUMENT a violation of `field`, and the segment service's ErrorInfo `reason`."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await call
    exc = info.value
    assert exc.code() == code, exc.details()
    if field is not None:
        assert field in violations(exc), (violations(exc), exc.details())
    if reason is not None:
        assert error_reason(exc) == ("segment.herald", reason), exc.details()
    return exc
